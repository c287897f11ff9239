"""Backoff policy with an injected clock and RNG."""

from __future__ import annotations

import random

import pytest

from agent.backoff import Backoff, parse_retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_grows_within_bounds_and_caps() -> None:
    clock = Clock()
    backoff = Backoff(1.0, 60.0, clock=clock, rng=random.Random(1))
    assert backoff.ready()
    ceilings = []
    for n in range(10):
        delay = backoff.failure()
        ceiling = min(60.0, 2.0**n)
        assert 1.0 <= delay <= ceiling
        ceilings.append(ceiling)
        assert not backoff.ready()
        assert backoff.wait_s() == pytest.approx(delay)
    assert ceilings[-1] == 60.0


def test_retry_after_is_honoured_and_success_resets() -> None:
    clock = Clock()
    backoff = Backoff(1.0, 10.0, clock=clock, rng=random.Random(2))
    assert backoff.failure(retry_after_s=120.0) == 120.0
    clock.now += 119.0
    assert not backoff.ready()
    clock.now += 1.0
    assert backoff.ready()
    backoff.reset()
    assert backoff.failures == 0 and backoff.ready()
    assert backoff.next_attempt_at == 0.0


def test_jitter_spreads_a_fleet() -> None:
    delays = {Backoff(1.0, 300.0, rng=random.Random(seed)).failure() for seed in range(50)}
    assert len(delays) == 1  # first failure: always exactly base (the range is [1, 1])
    spread = set()
    for seed in range(50):
        b = Backoff(1.0, 300.0, rng=random.Random(seed))
        for _ in range(5):
            d = b.failure()
        spread.add(round(d, 3))
    assert len(spread) > 40


def test_parse_retry_after() -> None:
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_invalid_bounds() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(5, 1)


def test_retry_after_method_is_a_floor_not_a_cap() -> None:
    clock = Clock()
    backoff = Backoff(1.0, 300.0, clock=clock, rng=random.Random(3))
    for _ in range(8):
        backoff.failure()
    # The server asks for less than our own backoff: ours wins (still >= what it asked).
    delay = backoff.retry_after(0.5)
    assert 1.0 <= delay <= 300.0 and delay >= 0.5
    # The server asks for more than our cap: honoured in full.
    assert backoff.retry_after(900.0) == 900.0
    assert backoff.next_attempt_at == clock.now + 900.0


def test_same_seed_same_delays() -> None:
    first = Backoff(1.0, 300.0, clock=Clock(), rng=random.Random(7))
    second = Backoff(1.0, 300.0, clock=Clock(), rng=random.Random(7))
    assert [first.failure() for _ in range(6)] == [second.failure() for _ in range(6)]


def test_many_failures_stay_at_the_cap() -> None:
    backoff = Backoff(1.0, 300.0, clock=Clock(), rng=random.Random(4))
    delays = [backoff.failure() for _ in range(2000)]
    assert max(delays) <= 300.0 and min(delays) >= 1.0
