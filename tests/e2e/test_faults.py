"""Faults with real processes: the collector and PostgreSQL restart while a fleet uploads.

One test process drives 50 agents' real :class:`agent.uploader.Uploader` and
:class:`agent.spool.Spool` objects (each agent enrolled through the public API, each with its
own spool directory, each producing events with known ids) against a real
``dexscope collector serve`` process backed by a *private* PostgreSQL server started for this
test only (the machine's shared server is never touched). Mid-upload the collector is
stopped with SIGTERM and started again on the same port, then PostgreSQL is restarted
(``pg_ctl -m fast``: open connections and transactions are cut). After recovery the agents
drain, and the database must hold every produced event id exactly once.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from agent.config import UploadSettings
from agent.spool import Spool
from agent.state import Identity
from agent.uploader import Uploader
from tests.support import (
    CollectorProcess,
    create_tenant,
    enroll,
    free_port,
    resource_event,
    run_cli,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

AGENTS = 50
ROUNDS = 40
EVENTS_PER_ROUND = 3
ROUND_S = 0.2

UPLOAD = UploadSettings(
    max_batch_events=10,
    max_batch_bytes=1 << 20,
    max_batch_age_s=0.2,
    flush_jitter=0.1,
    timeout_s=5.0,
    backoff_base_s=0.2,
    backoff_max_s=1.0,
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _need(condition: bool, reason: str) -> None:
    """Skip (fail under ``CI=true``) unless ``condition``."""
    if condition:
        return
    if _in_ci():
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


class PrivatePostgres:
    """A PostgreSQL server of its own (``initdb`` + ``pg_ctl``), trust auth, on a free port.

    As root, the server runs as the ``postgres`` OS user (PostgreSQL refuses root); its
    directory is then a fresh temporary directory owned by that user, because pytest's
    ``tmp_path`` lies under a root-only (0700) directory the server could not enter.
    """

    def __init__(self, bin_dir: Path, base: Path) -> None:
        self.bin_dir = bin_dir
        self.base = base
        self.data = base / "data"
        self.sockets = base / "sockets"
        self.log = base / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/dexscope"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise AssertionError(f"{args[0]} failed: {result.stdout}{result.stderr}{log}")

    def init(self) -> None:
        """``initdb`` the data directory (trust auth, user ``postgres``)."""
        self.sockets.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sockets, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        """Stop in fast mode (open sessions are terminated, transactions rolled back)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self) -> None:
        """Create the ``dexscope`` database."""
        admin = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql('CREATE DATABASE "dexscope"')
        finally:
            admin.dispose()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server for one test, stopped and deleted afterwards."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    _need(
        bool(found) and (Path(found[-1]) / "initdb").exists(),
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin",
    )
    if os.geteuid() == 0:
        _need(shutil.which("runuser") is not None, "running as root needs runuser")
    base = Path(tempfile.mkdtemp(prefix="dexscope-pg-"))
    os.chmod(base, 0o700)
    server = PrivatePostgres(Path(found[-1]), base)
    started = False
    try:
        server.init()
        server.start()
        started = True
        server.create_database()
        yield server
    finally:
        if started:
            # AssertionError: already stopped by a failed restart; nothing left to stop
            with contextlib.suppress(AssertionError):
                server.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class FleetAgent:
    """One agent of the fleet: its real spool and uploader, and the ids it produced."""

    identity: Identity
    spool: Spool
    uploader: Uploader
    client: httpx.Client
    produced: list[str] = field(default_factory=list)

    def produce(self, count: int) -> None:
        """Spool ``count`` resource samples with new ids (remembered)."""
        events = [resource_event() for _ in range(count)]
        self.spool.append(events)
        self.produced.extend(str(e["event_id"]) for e in events)

    def upload_loop(self, stop: threading.Event) -> None:
        """The agent's upload loop (as ``agent run``'s network thread), until ``stop``."""
        while not stop.is_set():
            try:
                delay = self.uploader.step()
            except Exception:  # as agent run: one failed pass never ends the loop
                delay = 0.5
            stop.wait(min(delay, 0.2))


def _stored_ids(database_url: str) -> list[str]:
    from collector.settings import normalise_database_url

    engine = sa.create_engine(normalise_database_url(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT event_id FROM events")).scalars().all()
    finally:
        engine.dispose()
    return [str(uuid.UUID(str(r))) for r in rows]


def test_collector_and_postgres_restarts_while_50_agents_upload(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """Every produced event is stored exactly once after a collector and a PostgreSQL restart.

    50 agents spool 3 events every 0.2 s for 8 s (6000 events) and upload in batches of at
    most 10. At ~2 s the collector gets SIGTERM and comes back on the same port 1 s later;
    at ~5 s PostgreSQL is restarted in fast mode. The agents then drain; the set of event
    ids in the database must equal the set produced, with no duplicates, and every spool
    must be empty. Upload failures must have happened (the faults hit in-flight traffic).
    """
    url = private_postgres.url
    run_cli("collector", "migrate", "--database-url", url)
    tenant = create_tenant(url)
    collector = CollectorProcess(url, tmp_path / "collector.log").start()
    agents: list[FleetAgent] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        for i in range(AGENTS):
            device = enroll(collector.url, tenant.enrollment_token, hostname=f"ws-{i:03d}")
            identity = Identity(device.device_id, device.token, collector.url, "2026-01-01")
            spool = Spool(tmp_path / f"agent-{i:02d}" / "spool.db")
            client = httpx.Client(timeout=httpx.Timeout(UPLOAD.timeout_s, connect=2.0))
            uploader = Uploader(
                identity, collector.url, spool, UPLOAD, client, rng=random.Random(i)
            )
            agents.append(FleetAgent(identity, spool, uploader, client))
        threads = [
            threading.Thread(target=a.upload_loop, args=(stop,), daemon=True) for a in agents
        ]
        for thread in threads:
            thread.start()

        started = time.monotonic()
        collector_restarted = postgres_restarted = False
        for round_no in range(ROUNDS):
            for agent in agents:
                agent.produce(EVENTS_PER_ROUND)
            elapsed = time.monotonic() - started
            if not collector_restarted and elapsed >= 2.0:
                collector.stop()  # SIGTERM mid-upload
                time.sleep(1.0)
                collector.start()  # same port
                collector_restarted = True
            if not postgres_restarted and elapsed >= 5.0:
                private_postgres.stop()
                private_postgres.start()
                postgres_restarted = True
            time.sleep(max(0.0, started + (round_no + 1) * ROUND_S - time.monotonic()))
        assert collector_restarted and postgres_restarted

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if all(a.spool.pending().events == 0 for a in agents):
                break
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        collector.stop()
        for agent in agents:
            agent.client.close()

    stats = [a.spool.stats() for a in agents]
    for agent in agents:
        agent.spool.close()
    produced = [event_id for a in agents for event_id in a.produced]
    stored = _stored_ids(url)
    failures = sum(s.counters["upload_failures_total"] for s in stats)
    print(
        f"produced {len(produced)}, stored {len(stored)}, distinct {len(set(stored))}, "
        f"upload failures {failures}, batches ok "
        f"{sum(s.counters['uploads_ok_total'] for s in stats)}"
    )
    assert len(produced) == AGENTS * ROUNDS * EVENTS_PER_ROUND
    assert [s.events for s in stats] == [0] * AGENTS, "some spools did not drain"
    assert sum(s.dropped_events_total for s in stats) == 0
    assert sum(s.rejected_batches for s in stats) == 0, [s.last_error for s in stats]
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert set(stored) == set(produced)
    assert failures > 0, "the restarts did not hit any upload"
