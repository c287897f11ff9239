"""Sentiment micro-surveys on the device: campaigns from the collector, the fatigue rules,
the prompt box shared with the user-session helper, and the helper's dialog.

- :mod:`agent.surveys.model`: campaigns, prompts and answers as the agent sees them, and the
  strict parser of the campaigns the collector sends;
- :mod:`agent.surveys.policy`: who is asked what and when (triggers, sampling, fatigue);
- :mod:`agent.surveys.box`: the local prompt box (files) between the service and the helper;
- :mod:`agent.surveys.dialog`: the helper's Tk dialog (``dexscope agent survey-helper``).
"""

from __future__ import annotations

__all__: list[str] = []
