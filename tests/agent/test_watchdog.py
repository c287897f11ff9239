"""The watchdog's decisions on an injected clock."""

from __future__ import annotations

from agent.watchdog import PROFILES, Decision, Watchdog, WatchdogLimits

LIMITS = WatchdogLimits("test", cpu_percent=5.0, rss_mb=100.0, window_s=10.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(
    dog: Watchdog, clock: Clock, cpu_percent: float, rss_mb: float, cpu: list[float]
) -> Decision:
    """One window at ``cpu_percent`` (``cpu`` carries the running CPU-seconds total)."""
    clock.now += LIMITS.window_s
    cpu[0] += cpu_percent / 100 * LIMITS.window_s
    return dog.observe(cpu[0], rss_mb)


def test_throttles_then_restarts_when_cpu_stays_high() -> None:
    clock, cpu = Clock(), [0.0]
    dog = Watchdog(LIMITS, clock)
    assert dog.observe(0.0, 30.0) is Decision.OK  # first call starts the window
    decisions = [feed(dog, clock, 20.0, 30.0, cpu) for _ in range(5)]
    assert decisions == [
        Decision.OK,
        Decision.THROTTLE,
        Decision.OK,
        Decision.OK,
        Decision.RESTART,
    ]
    assert dog.throttled and dog.last_cpu_percent is not None
    assert round(dog.last_cpu_percent, 6) == 20.0


def test_recovers_after_calm_windows_and_ignores_short_spikes() -> None:
    clock, cpu = Clock(), [0.0]
    dog = Watchdog(LIMITS, clock)
    dog.observe(0.0, 30.0)
    assert feed(dog, clock, 50.0, 30.0, cpu) is Decision.OK  # one bad window: a spike
    assert feed(dog, clock, 1.0, 30.0, cpu) is Decision.OK
    assert not dog.throttled
    feed(dog, clock, 50.0, 30.0, cpu)
    assert feed(dog, clock, 50.0, 30.0, cpu) is Decision.THROTTLE
    calm = [feed(dog, clock, 0.5, 30.0, cpu) for _ in range(LIMITS.recover_after)]
    assert calm[-1] is Decision.UNTHROTTLE and set(calm[:-1]) == {Decision.OK}
    assert not dog.throttled


def test_memory_over_limit_throttles_and_runaway_memory_restarts_at_once() -> None:
    clock, cpu = Clock(), [0.0]
    dog = Watchdog(LIMITS, clock)
    dog.observe(0.0, 30.0)
    assert [feed(dog, clock, 0.1, 120.0, cpu) for _ in range(2)][-1] is Decision.THROTTLE
    assert dog.observe(cpu[0], 250.0) is Decision.RESTART


def test_no_verdict_inside_a_window() -> None:
    clock = Clock()
    dog = Watchdog(LIMITS, clock)
    dog.observe(0.0, 30.0)
    clock.now += 1.0
    assert dog.observe(5.0, 30.0) is Decision.OK  # 500 % for one second: not judged yet
    assert dog.last_cpu_percent is None


def test_profiles() -> None:
    assert set(PROFILES) == {"normal", "restrictive"}
    assert PROFILES["restrictive"].cpu_percent < PROFILES["normal"].cpu_percent
    assert PROFILES["restrictive"].rss_mb < PROFILES["normal"].rss_mb
