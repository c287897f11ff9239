"""What the uploader does with each collector answer (pure decision function)."""

from __future__ import annotations

import pytest

from agent.uploader import Accept, Reject, Retry, decide


@pytest.mark.parametrize("status", [200, 201])
def test_success(status: int) -> None:
    assert decide(status, {}) == Accept()


@pytest.mark.parametrize("status", [400, 409, 413, 415, 422])
def test_permanent_refusals_are_quarantined(status: int) -> None:
    decision = decide(status, {}, "events[0].ts: too old")
    assert isinstance(decision, Reject) and "events[0].ts" in decision.reason


@pytest.mark.parametrize("status", [401, 403])
def test_token_problems_keep_the_data(status: int) -> None:
    decision = decide(status, {})
    assert isinstance(decision, Retry) and "device token refused" in decision.reason


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_answers_retry_with_retry_after(status: int) -> None:
    decision = decide(status, {"retry-after": "42"})
    assert isinstance(decision, Retry) and decision.after_s == 42.0
