"""Agent faults with the real spool, uploader and runner: outages, clocks, hanging servers.

- a long outage fills the spool past its cap: the documented policy drops the oldest bulk
  samples first, never crashes or survey answers, and counts what it dropped (``agent
  status`` shows the counter); after the outage the rest reaches a real collector once;
- the wall clock jumps back and forth: no negative durations, no batch rejected by a real
  collector, and a backward jump does not hold the spooled events back;
- a collector that accepts connections and never answers: uploads time out within the
  configured timeout and back off, while the real ``agent run`` loop keeps sampling;
- the state directory's filesystem fills up (a real 16 MiB tmpfs in a private mount
  namespace): the real ``agent run`` process keeps running, logs why, and recovers.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import sqlalchemy as sa

from agent import main as agent_main
from agent.config import ConfigLayers, UploadSettings
from agent.main import AgentRuntime, agent_status, http_client
from agent.runner import SamplerRunner
from agent.samplers import Sampler, SamplerContext, load_builtin_samplers
from agent.spool import Spool
from agent.state import Identity, save_identity
from agent.uploader import IDLE_WAIT_S, MIN_WAIT_S, Uploader
from dexscope.wire import Event
from tests.support import (
    REPO,
    CollectorProcess,
    Tenant,
    create_tenant,
    dexscope_cmd,
    enroll,
    free_port,
    run_cli,
)


class Clock:
    """An injected wall clock (seconds) that tests move forwards and backwards."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class ClockedSampler(Sampler):
    """Emits ``kind`` events stamped with an injected clock, ``every`` n-th run."""

    name: ClassVar[str] = "clocked"

    def __init__(self, kind: str, clock: Callable[[], float], every: int = 1) -> None:
        self.kind = kind
        self.clock = clock
        self.every = every
        self.runs = 0
        self.produced: list[str] = []

    def collect(self, ctx: SamplerContext) -> list[Event]:
        """One event of this sampler's kind (every ``every`` runs)."""
        self.runs += 1
        if self.runs % self.every:
            return []
        event_id = str(uuid.uuid4())
        ts = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        body: dict[str, Any] = {"event_id": event_id, "ts": ts, "type": self.kind}
        if self.kind == "resource_sample":
            body.update(interval_s=60.0, cpu_percent=12.5, memory_percent=40.0)
        elif self.kind == "app_crash":
            body.update(app_name="editor.exe", source="test")
        elif self.kind == "survey_response":
            body.update(campaign_id="c1", prompt_id=str(uuid.uuid4()), outcome="answered", value=4)
        self.produced.append(event_id)
        return [body]  # type: ignore[list-item]


def _upload_settings(**changes: float) -> UploadSettings:
    values: dict[str, float] = {
        "max_batch_events": 20,
        "max_batch_bytes": 1 << 20,
        "max_batch_age_s": 0.1,
        "flush_jitter": 0.1,
        "timeout_s": 5.0,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.1,
        **changes,
    }
    return UploadSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def collector(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CollectorProcess, Tenant]]:
    """A real collector process on SQLite, shared by this module, and a tenant."""
    base = tmp_path_factory.mktemp("collector")
    url = f"sqlite:///{base / 'collector.db'}"
    run_cli("collector", "migrate", "--database-url", url)
    tenant = create_tenant(url)
    with CollectorProcess(url, base / "collector.log") as process:
        yield process, tenant


def _stored(collector: CollectorProcess, device_id: str) -> list[tuple[str, str]]:
    """(event id, type) of every event the collector stored for ``device_id``."""
    from collector.settings import normalise_database_url

    engine = sa.create_engine(normalise_database_url(collector.database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT event_id, type FROM events "
                    "WHERE replace(CAST(device_id AS TEXT), '-', '') = :d"
                ),
                {"d": uuid.UUID(device_id).hex},
            ).all()
    finally:
        engine.dispose()
    return [(str(uuid.UUID(str(r[0]))), str(r[1])) for r in rows]


def _identity(collector: CollectorProcess, tenant: Tenant, hostname: str) -> Identity:
    device = enroll(collector.url, tenant.enrollment_token, hostname=hostname)
    return Identity(device.device_id, device.token, collector.url, "2026-01-01T00:00:00+00:00")


def test_long_outage_drops_oldest_bulk_first_and_counts_it(
    collector: tuple[CollectorProcess, Tenant], tmp_path: Path
) -> None:
    """Over the cap during an outage: only the oldest bulk samples go, all are counted.

    300 sampling rounds (a resource sample each, a crash every 10th, a survey answer every
    15th) while the collector is unreachable, into a 16 KiB spool. Then the collector comes
    back and the spool drains. Every crash and answer is stored; the stored plus the dropped
    bulk samples are exactly those produced; every dropped sample is older than every kept
    one outside the batch already formed when the outage began; ``agent status`` shows the
    counter.
    """
    process, tenant = collector
    state = tmp_path / "state"
    identity = _identity(process, tenant, "ws-outage")
    save_identity(state, identity)
    spool = Spool(state / "spool.db", max_bytes=16 * 1024)
    runner = SamplerRunner()
    ctx = SamplerContext(state, spool.stats, runner.take_stats, spool.mark)
    bulk = ClockedSampler("resource_sample", time.time)
    crash = ClockedSampler("app_crash", time.time, every=10)
    answer = ClockedSampler("survey_response", time.time, every=15)
    dead = f"http://127.0.0.1:{free_port()}"
    with httpx.Client(timeout=5.0) as client:
        up = Uploader(identity, dead, spool, _upload_settings(), client, rng=random.Random(1))
        first_batch: tuple[str, ...] = ()
        for _ in range(300):
            runner.round([bulk, crash, answer], ctx, spool)
            if up.backoff.ready() and up.send_one() is not None and not first_batch:
                formed = spool.begin_batch(20, 1 << 20)  # the kept batch, re-read as is
                assert formed is not None
                first_batch = tuple(json.loads(e)["event_id"] for e in formed.events_json)
        during = spool.stats()
        up.server_url = process.url  # the collector is back
        up.backoff.reset()
        sent, failure = up.drain()
        assert failure is None
    after = spool.stats()
    status = agent_status(state)
    spool.close()

    stored = _stored(process, identity.device_id)
    stored_ids = [i for i, _ in stored]
    dropped = during.dropped_events_total
    print(
        f"produced {len(bulk.produced)} bulk + {len(crash.produced)} crashes + "
        f"{len(answer.produced)} answers; dropped {dropped}; stored {len(stored)}; "
        f"batches {sent}; failures {during.counters['upload_failures_total']}"
    )
    assert dropped > 0 and during.bytes <= 16 * 1024 + 2048
    assert after.dropped_events_total == dropped and after.events == 0
    assert status["dropped_events_total"] == dropped and status["spool_events"] == 0
    assert len(stored_ids) == len(set(stored_ids))
    assert set(crash.produced) <= set(stored_ids)
    assert set(answer.produced) <= set(stored_ids)
    kept_bulk = [i for i in bulk.produced if i in set(stored_ids)]
    lost = [i for i in bulk.produced if i not in set(stored_ids)]
    assert len(lost) == dropped
    assert (
        len(stored_ids) == len(bulk.produced) + len(crash.produced) + len(answer.produced) - dropped
    )
    order = {event_id: n for n, event_id in enumerate(bulk.produced)}
    later_kept = [order[i] for i in kept_bulk if i not in first_batch]
    assert max(order[i] for i in lost) < min(later_kept), "a newer sample went before an older"


def _jumping_round_trip(
    process: CollectorProcess,
    identity: Identity,
    state: Path,
    wall: Clock,
    jumps: tuple[float, ...],
) -> tuple[list[float], ClockedSampler, Spool]:
    """Sample 3 rounds, jump, sample 3 rounds, upload, for each jump; a perf clock runs
    backwards. Returns the sampler durations, the sampler and the (open) spool."""
    perf = iter([100.0 - 0.5 * n for n in range(10_000)])  # runs backwards
    runner = SamplerRunner(clock=lambda: next(perf))
    spool = Spool(state / "spool.db", clock=wall)
    ctx = SamplerContext(state, spool.stats, runner.take_stats, spool.mark)
    sampler = ClockedSampler("resource_sample", wall)
    durations: list[float] = []
    with httpx.Client(timeout=5.0) as client:
        up = Uploader(identity, process.url, spool, _upload_settings(), client, clock=wall)
        for jump in jumps:
            for _ in range(3):
                runner.round([sampler], ctx, spool)
                wall.now += 1.0
            wall.now += jump
            for _ in range(3):
                runner.round([sampler], ctx, spool)
                wall.now += 1.0
            durations += [s["last_duration_ms"] for s in runner.take_stats().values()]
            wait = up.next_due_in_s()
            assert wait == 0.0 or MIN_WAIT_S <= wait <= IDLE_WAIT_S
            up.drain()
    return durations, sampler, spool


def test_clock_jumping_forward_gives_no_negative_duration_and_no_rejected_batch(
    collector: tuple[CollectorProcess, Tenant],
    tmp_path: Path,
) -> None:
    """The wall clock jumps 1 h forward, then 30 min forward; a perf clock runs backwards.

    The agent's whole wall clock is the injected one (spool, uploader, event times,
    ``sent_at``); the boot clock is the real one. The real collector corrects the offset
    and accepts every batch; every event is stored once; no sampler duration is negative;
    no event expires.
    """
    process, tenant = collector
    identity = _identity(process, tenant, "ws-clock-fwd")
    wall = Clock()
    durations, sampler, spool = _jumping_round_trip(
        process, identity, tmp_path / "state", wall, (0.0, 3600.0, 1800.0)
    )
    stats = spool.stats()
    spool.close()
    stored = [i for i, _ in _stored(process, identity.device_id)]
    print(f"forward jumps: produced {len(sampler.produced)}, stored {len(stored)}")
    assert durations and min(durations) >= 0.0
    assert stats.rejected_batches == 0, stats.last_error
    assert stats.events == 0 and stats.expired_events_total == 0
    assert sorted(stored) == sorted(sampler.produced)


def test_clock_jumping_back_rejects_no_batch(
    collector: tuple[CollectorProcess, Tenant],
    tmp_path: Path,
) -> None:
    """The wall clock jumps 1 h back (as when NTP corrects a fast clock), then 2 h forward.

    The events spooled before the jump carry times an hour ahead of the clock at upload;
    the uploader re-stamps them from their boot-clock age, so every batch is accepted and
    every event stored once; no duration negative.
    """
    process, tenant = collector
    identity = _identity(process, tenant, "ws-clock-back")
    wall = Clock()
    durations, sampler, spool = _jumping_round_trip(
        process, identity, tmp_path / "state", wall, (0.0, -3600.0, 7200.0)
    )
    stats = spool.stats()
    quarantined = spool.quarantined()
    spool.close()
    stored = [i for i, _ in _stored(process, identity.device_id)]
    print(
        f"backward jump: produced {len(sampler.produced)}, stored {len(stored)}, "
        f"rejected batches {stats.rejected_batches} ({quarantined})"
    )
    assert durations and min(durations) >= 0.0
    assert stats.rejected_batches == 0, stats.last_error
    assert sorted(stored) == sorted(sampler.produced)


def test_a_backward_clock_jump_does_not_hold_events_back(tmp_path: Path) -> None:
    """Events spooled just before the clock goes back 1 h become due within the batch age.

    Deciding on ``now - oldest_created`` alone, the difference is negative after a backward
    jump and the events would wait until the clock catches up (an hour).
    """
    wall = Clock()
    spool = Spool(tmp_path / "spool.db", clock=wall)
    identity = Identity(str(uuid.uuid4()), "t", "http://127.0.0.1:9", "2026-01-01")
    with httpx.Client() as client:
        up = Uploader(identity, identity.server_url, spool, _upload_settings(), client, clock=wall)
        up._age_limit = up._jittered_age()  # as after a first successful upload
        spool.append([_resource(wall)])
        wall.now -= 3600.0
        wall.now += 1.0  # far more than max_batch_age_s (0.1 s ± 10 %) of real time passes
        due, wait = up.due(), up.next_due_in_s()
    spool.close()
    assert due and wait <= 1.0, f"due={due}, next pass in {wait:.0f} s"


def _resource(clock: Callable[[], float]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "ts": datetime.fromtimestamp(clock(), UTC).isoformat(),
        "type": "resource_sample",
        "interval_s": 60.0,
        "cpu_percent": 1.0,
        "memory_percent": 2.0,
    }


class HangingServer:
    """A TCP server that accepts connections, reads nothing back, and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[float] = []
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(time.monotonic())
            self.connections.append(conn)  # held open, never answered

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.connections:
            conn.close()
        self.sock.close()


HANG_CONFIG = """
config_refresh_s = 3600

[upload]
max_batch_age_s = 0.1
timeout_s = 1.0
backoff_base_s = 0.5
backoff_max_s = 1.0

[samplers.resource_sample]
enabled = true
interval_s = 0.25
"""


def test_hanging_collector_times_out_backs_off_and_sampling_goes_on(tmp_path: Path) -> None:
    """The real ``agent run`` loop against a collector that never answers, for 6 s.

    Each upload gives up after the 1 s timeout and backs off (0.5-1 s), so connection
    attempts are spaced by at least the timeout; meanwhile the sampling loop keeps spooling
    a resource sample every 0.25 s. SIGTERM then stops the agent promptly.
    """
    registry = load_builtin_samplers()
    state = tmp_path / "state"
    config_file = tmp_path / "agent.toml"
    others = "".join(
        f"\n[samplers.{name}]\nenabled = false\n" for name in registry if name != "resource_sample"
    )
    config_file.write_text(HANG_CONFIG + others)
    with HangingServer() as server:
        layers = ConfigLayers.load(
            flags={"server_url": server.url, "state_dir": str(state)},
            config_file=config_file,
            environ={},
            known_samplers=frozenset(registry),
        )
        config = layers.build()
        identity = Identity(str(uuid.uuid4()), "secret", server.url, "2026-01-01")
        save_identity(state, identity)
        with http_client(config) as client:
            runtime = AgentRuntime(layers, config, identity, client)

            def _terminate() -> None:
                if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
                    os.kill(os.getpid(), signal.SIGTERM)

            timer = threading.Timer(6.0, _terminate)
            started = time.monotonic()
            timer.start()
            try:
                assert agent_main._run_forever(runtime) == 0
            finally:
                timer.cancel()
            elapsed = time.monotonic() - started
            stats = runtime.spool.stats()
            failures = runtime.uploader.backoff.failures
            created = [
                float(row[0])
                for row in runtime.spool._db.execute("SELECT created FROM events ORDER BY seq")
            ]
            runtime.spool.close()
        attempts = list(server.accepted)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    sample_gaps = [b - a for a, b in itertools.pairwise(created)]
    print(
        f"sampled {stats.events_appended_total} events, {len(attempts)} upload attempts, "
        f"gaps {[round(g, 2) for g in gaps]}, longest sampling gap "
        f"{max(sample_gaps):.2f} s, failures {failures}, stopped after {elapsed:.1f} s"
    )
    assert elapsed < 6.0 + config.upload.timeout_s + 3
    assert stats.events_appended_total >= 8
    assert max(sample_gaps) < config.upload.timeout_s - 0.2, "sampling waited for an upload"
    assert stats.counters["uploads_ok_total"] == 0
    assert 2 <= len(attempts) <= 5, "uploads did not time out and back off"
    assert min(gaps) >= config.upload.timeout_s + config.upload.backoff_base_s - 0.2
    assert stats.counters["upload_failures_total"] >= 2
    assert "ReadTimeout" in (stats.last_error or "")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tmpfs",
            str(where),
        ],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


DISK_CONFIG = """
[upload]
max_batch_age_s = 0.2
backoff_base_s = 0.2
backoff_max_s = 1.0
timeout_s = 5

[samplers.resource_sample]
enabled = true
interval_s = 0.2
"""


def test_full_state_disk_keeps_the_agent_running_and_it_recovers(
    collector: tuple[CollectorProcess, Tenant], tmp_path: Path
) -> None:
    """``agent run`` on a 16 MiB tmpfs state dir (private mount namespace) that fills up.

    The test fills the filesystem through ``/proc/PID/root`` (the agent's view of it) while
    the collector is unreachable, so the spool must grow: appends fail with SQLite's
    "database or disk is full". The agent stays alive and logs the failure; once the filler
    is removed and the collector is back, it samples and uploads again.
    """
    process, tenant = collector
    mount = tmp_path / "state"
    mount.mkdir()
    if not _can_mount_tmpfs(mount):
        reason = "a real full disk needs root, unshare and tmpfs (mount in a private namespace)"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    registry = load_builtin_samplers()
    config_file = tmp_path / "agent.toml"
    config_file.write_text(
        DISK_CONFIG
        + "".join(
            f"\n[samplers.{n}]\nenabled = false\n" for n in registry if n != "resource_sample"
        )
    )
    log_path = tmp_path / "agent.log"
    script = 'mount -t tmpfs -o size=16m,mode=0700 tmpfs "$0" && exec "$@"'
    agent_args = dexscope_cmd(
        "agent",
        "run",
        "--server",
        process.url,
        "--enroll-token",
        tenant.enrollment_token,
        "--state-dir",
        str(mount),
        "--config",
        str(config_file),
    )
    with log_path.open("ab") as log:
        agent = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                str(mount),
                *agent_args,
            ],
            stdout=log,
            stderr=log,
            cwd=REPO,
        )
    try:
        view = Path(f"/proc/{agent.pid}/root") / str(mount).lstrip("/")
        _wait(lambda: (view / "identity.json").exists(), 30, "enrollment")
        device_id = json.loads((view / "identity.json").read_text())["device_id"]
        _wait(lambda: len(_stored(process, device_id)) > 0, 30, "a first upload")
        process.stop()  # the collector goes away: the spool has to grow
        filler = view / "filler"
        try:
            with filler.open("wb") as handle:
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
        except OSError as exc:  # ENOSPC: the filesystem is full
            assert exc.errno == errno.ENOSPC, exc
        _wait(
            lambda: "database or disk is full" in log_path.read_text(),
            30,
            "the agent to report the full disk",
        )
        time.sleep(1.0)
        assert agent.poll() is None, log_path.read_text()[-2000:]
        filler.unlink()
        process.start()
        before = len(_stored(process, device_id))
        _wait(lambda: len(_stored(process, device_id)) > before + 5, 30, "uploads after recovery")
        assert agent.poll() is None, log_path.read_text()[-2000:]
        ids = [i for i, _ in _stored(process, device_id)]
        assert len(ids) == len(set(ids)), "an event was stored twice"
        full = [line for line in log_path.read_text().splitlines() if "disk is full" in line]
        print(f"{len(full)} failed rounds logged, e.g. {full[0]}; {len(ids)} events stored")
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        if process.proc is None:
            process.start()  # the module's other tests share it


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
