"""Time lost: minutes of an employee's day wasted, per device-day, per app and per persona.

* boot and sign-in: every sample slower than the persona's T loses (duration - T) — the
  tolerating ones too: the user waited beyond what the persona should;
* app hangs: the whole hang (the persona's ``hang_default_s`` when the OS did not record it);
* app crashes and system crashes: a fixed cost per event (persona: 5 and 15 minutes by
  default, 10 and 20 for executives).

Synthetic probes lose nobody's time (no user waited) and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from scoring.metrics import DeviceDayInputs
from scoring.personas import METRICS, PersonaArrays

__all__ = ["COMPONENTS", "TimeLost", "excess_minutes", "sum_by", "time_lost"]

Floats = npt.NDArray[np.float64]

COMPONENTS: Final[tuple[str, ...]] = ("boot", "logon", "hang", "app_crash", "system_crash")
"""Columns of :attr:`TimeLost.per_group`."""


def excess_minutes(values: npt.ArrayLike, threshold: npt.ArrayLike) -> Floats:
    """Minutes beyond ``threshold`` (seconds) of each sample; 0 when within or missing."""
    excess = np.asarray(values, dtype=np.float64) - np.asarray(threshold, dtype=np.float64)
    out = np.fmax(excess, 0.0)  # fmax: NaN (missing) → 0
    out /= 60.0
    return out


def sum_by(labels: npt.ArrayLike, values: npt.ArrayLike, n_labels: int) -> Floats:
    """Sum of ``values`` per integer label (``np.bincount``), NaN values ignored."""
    v = np.asarray(values, dtype=np.float64)
    if np.isnan(v).any():
        v = np.nan_to_num(v)
    out = np.bincount(np.asarray(labels, dtype=np.intp), weights=v, minlength=n_labels)
    return out.astype(np.float64)


@dataclass(frozen=True)
class TimeLost:
    """Minutes lost: per device-day and component, per app (hangs, crashes), per persona."""

    per_group: Floats
    """(G, 5) minutes in :data:`COMPONENTS` order."""
    per_app: Floats
    """(A, 2) minutes lost to each app's hangs and crashes."""
    per_persona: Floats
    """(P,) total minutes per persona."""

    @property
    def total(self) -> Floats:
        """(G,) total minutes lost per device-day."""
        return np.asarray(self.per_group.sum(axis=1), dtype=np.float64)


def time_lost(inputs: DeviceDayInputs, params: PersonaArrays, n_apps: int) -> TimeLost:
    """Minutes lost per device-day, per app and per persona (see the module docstring)."""
    n = inputs.n_groups
    pg = inputs.persona_of_group()
    boot_t = params.threshold[:, METRICS.index("boot")]
    logon_t = params.threshold[:, METRICS.index("logon")]
    hang_g = np.asarray(inputs.hang_group, dtype=np.intp)
    crash_g = np.asarray(inputs.crash_group, dtype=np.intp)
    hang_min = (
        np.where(np.isnan(inputs.hang_s), params.hang_default_s[pg[hang_g]], inputs.hang_s) / 60.0
    )
    crash_min = params.app_crash_cost_min[pg[crash_g]]
    sys_g = np.asarray(inputs.system_crash_group, dtype=np.intp)
    per_group = np.stack(
        [
            sum_by(
                inputs.boot_group, excess_minutes(inputs.boot_s, boot_t[pg[inputs.boot_group]]), n
            ),
            sum_by(
                inputs.logon_group,
                excess_minutes(inputs.logon_s, logon_t[pg[inputs.logon_group]]),
                n,
            ),
            sum_by(hang_g, hang_min, n),
            sum_by(crash_g, crash_min, n),
            sum_by(sys_g, params.system_crash_cost_min[pg[sys_g]], n),
        ],
        axis=1,
    )
    per_app = np.stack(
        [sum_by(inputs.hang_app, hang_min, n_apps), sum_by(inputs.crash_app, crash_min, n_apps)],
        axis=1,
    )
    per_persona = sum_by(pg, per_group.sum(axis=1), len(params.names))
    return TimeLost(per_group=per_group, per_app=per_app, per_persona=per_persona)
