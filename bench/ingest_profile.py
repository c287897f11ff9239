"""Where ingest spends its CPU: cProfile of ``ingest_batch`` in-process on SQLite.

Usage: ``./dev bench profile [--batches N]``. Builds a migrated SQLite database, enrolls one
device, ingests N batches of 500 events through the service layer (no HTTP) under cProfile,
and prints the share of time in the main stages and the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.ingest import EVENTS_PER_BATCH, _events
from collector.db import make_engine, make_sessionmaker
from collector.devices.service import authenticate_device, enroll
from collector.ingest.service import ingest_batch
from collector.migrate import upgrade
from collector.settings import Settings
from collector.tenants.service import create_tenant

STAGES = {
    "validation (pydantic parse)": "service.py:*(parse_batch)",
    "timestamp checks": "service.py:*(_check_times)",
    "event insert (one statement)": "repository.py:*(insert_batch_events)",
    "commit": "session.py:*(commit)",
}


def main() -> int:
    """Profile and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    if not 1 <= args.batches <= 1000:
        parser.error("--batches 1..1000")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'p.db'}"
        engine = make_engine(url)
        upgrade(engine)
        factory = make_sessionmaker(engine)
        settings = Settings(database_url=url)
        with factory() as session:
            token = create_tenant(session, "profile").enrollment_token
        request = {
            "enrollment_token": token,
            "hostname": "p",
            "os": "linux",
            "os_version": "6",
            "hardware": {},
            "agent_version": "bench",
        }
        with factory() as session:
            device = enroll(session, json.dumps(request).encode(), settings)
        start = datetime.now(UTC) - timedelta(hours=5)
        bodies = [
            json.dumps(
                {
                    "batch_id": str(uuid.uuid4()),
                    "device_id": str(device["device_id"]),
                    "agent_version": "bench",
                    "schema_version": 1,
                    "sent_at": datetime.now(UTC).isoformat(),
                    "events": _events(EVENTS_PER_BATCH, start + timedelta(minutes=i)),
                }
            ).encode()
            for i in range(args.batches)
        ]
        profile = cProfile.Profile()
        profile.enable()
        for body in bodies:
            with factory() as session:
                ingest_batch(
                    session,
                    authenticate_device(session, str(device["device_token"])),
                    body,
                    settings,
                )
        profile.disable()
        engine.dispose()
    stats = pstats.Stats(profile)
    total = max(v[3] for k, v in stats.stats.items() if k[2] == "ingest_batch")  # type: ignore[attr-defined]
    events = args.batches * EVENTS_PER_BATCH
    print(
        f"{events} events in {total:.2f} s of profiled time: "
        f"{events / total:,.0f} events/s, {total / events * 1e6:.0f} µs/event"
    )
    for label, pattern in STAGES.items():
        file_part, func = pattern.split(":*(")
        func = func.rstrip(")")
        cum = sum(
            v[3]
            for k, v in stats.stats.items()  # type: ignore[attr-defined]
            if k[0].endswith(file_part) and k[2] == func
        )
        print(f"  {label:36} {cum:6.2f} s  {100 * cum / total:5.1f} %")
    stats.sort_stats("tottime").print_stats(8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
