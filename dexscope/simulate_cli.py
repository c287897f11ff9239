"""``dexscope simulate``: write a simulated fleet in wire format, or upload it to a collector.

The generation itself is :mod:`scoring.simulate` (pure); this module writes it and sends it.

Output in ``--out DIR``:

- ``batches/HOSTNAME-NNNN.json.gz`` (``.json`` with ``--no-gzip``): one wire v1 batch each,
  exactly an ingest body (gzip written with mtime 0, so files are byte-identical for the same
  arguments);
- ``devices.json``: the devices with their ground truth (persona, hardware class, site, time
  zone, working hours, app portfolio, working days, days off, event and batch counts);
- ``incidents.json``: the ground truth of the injected incidents (:mod:`scoring.incidents`;
  ``[]`` for a healthy fleet);
- ``tickets.csv``: service-desk tickets
  (``external_id,opened_at,device_hostname,user,category,summary,incident_id,resolved_at,
  first_contact_resolution``): background
  tickets (empty ``incident_id``) and those the users hit by an incident raised.

``--incidents auto`` (the default) plans incidents with
:func:`scoring.incidents.default_incidents` when the fleet has at least 20 devices and 14
days (about one per 150 devices per 30 days), none for a smaller one; ``none`` keeps the
fleet healthy; ``N`` plans N incidents (kinds in rotation; at least 9 days).

With ``--server URL --enroll-token T`` each device is enrolled (``POST /api/v1/enroll``, its
persona as ``persona_hint``, ``tags: {"site": ...}``) and its batches are sent to
``POST /api/v1/ingest`` with its device token, gzip-compressed, with ``device_id`` replaced
by the collector's id and ``sent_at`` set to the upload time (the collector shifts events
when ``sent_at`` is off its clock). The device identities are kept in
``DIR/enrollment.json`` (mode 0600), so running the same command again reuses them and the
collector answers every batch as a duplicate instead of storing the fleet twice.

The collector takes events up to 35 days old (its ``DEXSCOPE_MAX_EVENT_AGE_DAYS``) and 10
minutes ahead: ``--end`` (default: now, rounded down to the hour) and ``--days`` must keep the
period inside that window to upload; ``--max-age-days`` tells the command a collector's
larger setting.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    import httpx

    from scoring.simulate import Injector, SimConfig, SimDevice

__all__ = ["plan_incidents", "register", "run_simulate", "simulate_chunk"]

_MAX_DEVICES = 100_000
_MAX_DAYS = 366
_UPLOAD_MAX_AGE_DAYS = 35.0
_UPLOAD_MARGIN_S = 3600.0
_CHUNK = 20


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` command."""
    p = groups.add_parser(
        "simulate",
        help="generate a simulated healthy fleet in wire format (and upload it)",
        description="Generate a realistic simulated fleet (devices, events in wire batches, "
        "ground truth) into --out; with --server and --enroll-token, also enroll the devices "
        "and upload their batches to that collector.",
    )
    p.add_argument("--devices", type=int, default=100, help="number of devices (default 100)")
    p.add_argument("--days", type=int, default=7, help="length of the period in days (default 7)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument(
        "--end",
        help="end of the period, ISO 8601 (naive = UTC; default: now rounded down to the hour)",
    )
    p.add_argument("--server", help="collector URL to enroll and upload to")
    p.add_argument(
        "--enroll-token",
        default=os.environ.get("DEXSCOPE_ENROLL_TOKEN"),
        help="the tenant's enrollment token (or DEXSCOPE_ENROLL_TOKEN)",
    )
    p.add_argument(
        "--incidents",
        default="auto",
        help="injected incidents: auto (a realistic mix from 20 devices and 14 days, else "
        "none), none, or a number (kinds in rotation); default auto",
    )
    p.add_argument("--no-gzip", action="store_true", help="write batches as plain .json")
    p.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="processes generating, connections uploading (default: CPUs, at most 4)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    p.add_argument(
        "--max-age-days",
        type=float,
        default=_default_max_age_days(),
        help="oldest event age the collector takes, in days, to check the period against "
        "before uploading (default: DEXSCOPE_MAX_EVENT_AGE_DAYS, else 35, the collector's "
        "default)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run_simulate)


def _default_max_age_days() -> float:
    """The collector's setting when it is in this environment, else its default."""
    try:
        return float(os.environ.get("DEXSCOPE_MAX_EVENT_AGE_DAYS", _UPLOAD_MAX_AGE_DAYS))
    except ValueError:
        return _UPLOAD_MAX_AGE_DAYS


def _parse_end(text: str | None) -> datetime:
    from datetime import UTC, datetime

    from dexscope.cli import CliError

    if text is None:
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--end: not an ISO 8601 date or time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _check_args(args: argparse.Namespace, end: datetime) -> None:
    from datetime import UTC, datetime, timedelta

    from dexscope.cli import CliError

    if not 1 <= args.devices <= _MAX_DEVICES:
        raise CliError(f"--devices must be between 1 and {_MAX_DEVICES}, not {args.devices}")
    if not 1 <= args.days <= _MAX_DAYS:
        raise CliError(f"--days must be between 1 and {_MAX_DAYS}, not {args.days}")
    if args.workers < 1:
        raise CliError(f"--workers must be at least 1, not {args.workers}")
    if args.timeout <= 0:
        raise CliError("--timeout must be positive")
    if args.max_age_days <= 0:
        raise CliError("--max-age-days must be positive")
    spec = str(args.incidents)
    if spec not in ("auto", "none"):
        if not spec.isdigit() or int(spec) > 1000:
            raise CliError(f"--incidents must be auto, none or a number (0-1000), not {spec!r}")
        if int(spec) > 0 and args.days < 9:
            raise CliError("--incidents needs at least 9 days (onsets follow a 7-day baseline)")
    if args.server is None:
        return
    if not args.server.startswith(("http://", "https://")):
        raise CliError(f"--server must be an http:// or https:// URL, not {args.server!r}")
    if not args.enroll_token:
        raise CliError("--server needs --enroll-token (or DEXSCOPE_ENROLL_TOKEN)")
    now = datetime.now(UTC)
    if end > now + timedelta(minutes=5):
        raise CliError(
            f"--end {end.isoformat()} is in the future; the collector refuses events more "
            "than 10 minutes ahead"
        )
    oldest = now - timedelta(days=args.max_age_days) + timedelta(seconds=_UPLOAD_MARGIN_S)
    if end - timedelta(days=args.days) < oldest:
        raise CliError(
            f"the period would start more than {args.max_age_days:g} days ago, which the "
            "collector refuses; use fewer --days, a later --end, or (for a collector set "
            "with a larger DEXSCOPE_MAX_EVENT_AGE_DAYS) --max-age-days"
        )


def _prepare_out(out: Path) -> Path:
    from dexscope.cli import CliError

    batches = out / "batches"
    try:
        batches.mkdir(parents=True, exist_ok=True)
        probe = out / ".dexscope-write-test"
        probe.write_bytes(b"")
        probe.unlink()
        for old in batches.iterdir():
            if old.is_file() and old.name.endswith((".json.gz", ".json")):
                old.unlink()
    except OSError as exc:
        raise CliError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return batches


def plan_incidents(config: SimConfig, spec: str) -> list[Injector]:
    """The injectors for ``--incidents spec`` (``auto``, ``none`` or a number)."""
    from scoring.incidents import default_incidents

    if spec == "none":
        return []
    return default_incidents(config, config.seed, None if spec == "auto" else int(spec))


def simulate_chunk(
    config: SimConfig,
    indices: list[int],
    batches_dir: str,
    compress: bool,
    incidents: str = "none",
) -> dict[str, Any]:
    """Simulate the devices ``indices`` and write their batch files (a worker's task).

    ``incidents`` is the ``--incidents`` plan (the same in every worker: it depends on the
    configuration only). Returns the devices' ground truth, tickets, event counts by type,
    batch and byte counts, and the incident entries seen in these devices.
    """
    import gzip
    from collections import Counter

    from scoring.simulate import (
        batch_json,
        fleet_releases,
        make_device,
        make_sites,
        simulate_device,
    )

    sites = make_sites(config)
    releases = fleet_releases(config)
    injectors = plan_incidents(config, incidents)
    truth: list[dict[str, Any]] = []
    tickets: list[dict[str, str]] = []
    by_type: dict[str, int] = {}
    written = batches = 0
    suffix = ".json" if not compress else ".json.gz"
    for i in indices:
        out = simulate_device(config, make_device(config, i), sites, releases, injectors)
        truth.append(out.ground_truth())
        tickets.extend(out.tickets)
        for key, count in Counter(event["type"] for event in out.events).items():
            by_type[key] = by_type.get(key, 0) + count
        for seq, batch in enumerate(out.batches):
            data = batch_json(batch).encode()
            if compress:
                data = gzip.compress(data, compresslevel=3, mtime=0)
            path = Path(batches_dir) / f"{out.device.hostname}-{seq:04d}{suffix}"
            path.write_bytes(data)
            written += len(data)
            batches += 1
    return {
        "truth": truth,
        "tickets": tickets,
        "by_type": by_type,
        "bytes": written,
        "batches": batches,
        "devices": len(indices),
        "incidents": [entry for injector in injectors for entry in injector.incidents()],
    }


def run_simulate(args: argparse.Namespace) -> int:
    """Generate (and optionally upload) the fleet."""
    import time
    from collections import Counter

    from rich.console import Console

    from scoring.simulate import SimConfig

    start_clock = time.monotonic()
    end = _parse_end(args.end)
    _check_args(args, end)
    out: Path = args.out
    batches_dir = _prepare_out(out)
    config = SimConfig(devices=args.devices, days=args.days, seed=args.seed, end=end)
    console = Console(stderr=True)
    result = _generate(
        config, batches_dir, not args.no_gzip, args.workers, console, str(args.incidents)
    )
    generated_s = time.monotonic() - start_clock
    summary: dict[str, Any] = {
        "out": str(out),
        "devices": config.devices,
        "days": config.days,
        "seed": config.seed,
        "start": config.start.isoformat(),
        "end": config.end.isoformat(),
        "events": sum(result["by_type"].values()),
        "events_by_type": dict(sorted(result["by_type"].items())),
        "batches": result["batches"],
        "batch_bytes": result["bytes"],
        "tickets": result["tickets"],
        "incidents": len(result["incidents"]),
        "incident_kinds": dict(sorted(Counter(i["kind"] for i in result["incidents"]).items())),
        "generate_s": round(generated_s, 2),
    }
    if args.server:
        upload = _upload(config, args, out, console)
        summary["upload"] = upload
    if args.json:
        import json

        print(json.dumps(summary, indent=2))
    else:
        console.print(
            f"{summary['devices']} devices x {summary['days']} days: {summary['events']:,} "
            f"events in {summary['batches']:,} batches ({summary['batch_bytes'] / 1e6:.1f} MB) "
            f"written to {out} in {generated_s:.1f} s"
        )
        if args.server:
            u = summary["upload"]
            console.print(
                f"uploaded to {args.server}: {u['enrolled']} devices enrolled, "
                f"{u['accepted']:,} events stored, {u['duplicates']} batches already there"
            )
    return 0


def _generate(
    config: SimConfig,
    batches_dir: Path,
    compress: bool,
    workers: int,
    console: Any,
    incidents: str = "none",
) -> dict[str, Any]:
    import csv
    import json
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import Progress

    from dexscope.cli import CliError

    chunks = [
        list(range(i, min(i + _CHUNK, config.devices))) for i in range(0, config.devices, _CHUNK)
    ]
    parts: list[dict[str, Any]] = []
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("Simulating devices", total=config.devices)
            if workers == 1 or len(chunks) == 1:
                for chunk in chunks:
                    parts.append(
                        simulate_chunk(config, chunk, str(batches_dir), compress, incidents)
                    )
                    progress.advance(task, len(chunk))
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    futures = [
                        pool.submit(
                            simulate_chunk, config, chunk, str(batches_dir), compress, incidents
                        )
                        for chunk in chunks
                    ]
                    for future in futures:
                        parts.append(future.result())
                        progress.advance(task, parts[-1]["devices"])
    except OSError as exc:
        raise CliError(f"cannot write to {batches_dir}: {exc.strerror or exc}") from None

    truth = [t for part in parts for t in part["truth"]]
    tickets = sorted(
        (t for part in parts for t in part["tickets"]),
        key=lambda t: (t["opened_at"], t["device_hostname"]),
    )
    for n, ticket in enumerate(tickets, start=1):
        ticket["external_id"] = f"SIM-{n:06d}"
    from scoring.simulate import ticket_outcomes

    tickets = ticket_outcomes(tickets, config.seed)
    by_type: dict[str, int] = {}
    for part in parts:
        for key, value in part["by_type"].items():
            by_type[key] = by_type.get(key, 0) + value
    from scoring.incidents import merge_incidents

    truth_incidents = merge_incidents(i for part in parts for i in part["incidents"])
    out = batches_dir.parent
    try:
        (out / "devices.json").write_text(json.dumps(truth, indent=2) + "\n")
        (out / "incidents.json").write_text(json.dumps(truth_incidents, indent=2) + "\n")
        with (out / "tickets.csv").open("w", newline="") as handle:
            from scoring.simulate import TICKET_FIELDS, TICKET_OUTCOME_FIELDS

            writer = csv.DictWriter(
                handle,
                fieldnames=[*TICKET_FIELDS, *TICKET_OUTCOME_FIELDS],
                lineterminator="\n",
            )
            writer.writeheader()
            writer.writerows(tickets)
    except OSError as exc:
        raise CliError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return {
        "by_type": by_type,
        "batches": sum(p["batches"] for p in parts),
        "bytes": sum(p["bytes"] for p in parts),
        "tickets": len(tickets),
        "incidents": truth_incidents,
    }


def _load_state(path: Path, server: str) -> dict[str, dict[str, str]]:
    import json

    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("server") != server:
        return {}
    devices = state.get("devices")
    return devices if isinstance(devices, dict) else {}


def _save_state(path: Path, server: str, devices: dict[str, dict[str, str]]) -> None:
    import json

    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"server": server, "devices": devices}, handle, indent=2)
    os.replace(tmp, path)


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def _post(
    client: httpx.Client, url: str, what: str, *, attempts: int = 6, **kwargs: Any
) -> httpx.Response:
    """POST with retries on network errors, 429 and 5xx; other answers are returned."""
    import time

    import httpx

    from dexscope.cli import CliError

    delay = 0.5
    for attempt in range(attempts):
        try:
            response = client.post(url, **kwargs)
        except httpx.HTTPError as exc:
            if attempt == attempts - 1:
                raise CliError(
                    f"cannot reach the collector for {what}: {type(exc).__name__}: {exc}"
                ) from None
        else:
            if response.status_code != 429 and response.status_code < 500:
                return response
            if attempt == attempts - 1:
                raise CliError(
                    f"the collector failed {what}: HTTP {response.status_code} "
                    f"{_error_message(response)}"
                )
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                delay = min(30.0, float(retry_after))
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


def _upload(config: SimConfig, args: argparse.Namespace, out: Path, console: Any) -> dict[str, Any]:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from rich.progress import Progress

    from scoring.simulate import make_devices

    server = args.server.rstrip("/")
    state_path = out / "enrollment.json"
    identities = _load_state(state_path, server)
    devices = make_devices(config)
    files: dict[str, list[Path]] = {}
    for path in sorted((out / "batches").iterdir()):
        files.setdefault(path.name.rsplit("-", 1)[0], []).append(path)
    totals = {"enrolled": 0, "reused": 0, "batches": 0, "accepted": 0, "duplicates": 0}
    lock = threading.Lock()
    started = time.monotonic()

    with (
        httpx.Client(timeout=args.timeout) as client,
        Progress(console=console, transient=True) as progress,
    ):
        task = progress.add_task("Uploading batches", total=sum(len(f) for f in files.values()))

        def one_device(device: SimDevice) -> None:
            identity = identities.get(device.device_id)
            if identity is None:
                identity = _enroll(client, server, device, args.enroll_token, config)
                with lock:
                    identities[device.device_id] = identity
                    totals["enrolled"] += 1
            else:
                with lock:
                    totals["reused"] += 1
            for path in files.get(device.hostname, []):
                accepted, duplicate = _send(client, server, path, identity)
                with lock:
                    totals["batches"] += 1
                    totals["accepted"] += accepted
                    totals["duplicates"] += int(duplicate)
                progress.advance(task)

        try:
            with ThreadPoolExecutor(max_workers=args.workers) as pool:
                for future in [pool.submit(one_device, d) for d in devices]:
                    future.result()
        finally:
            _save_state(state_path, server, identities)
    return {**totals, "server": server, "upload_s": round(time.monotonic() - started, 2)}


def _enroll(
    client: httpx.Client, server: str, device: SimDevice, token: str, config: SimConfig
) -> dict[str, str]:
    from dexscope.cli import CliError

    response = _post(
        client,
        f"{server}/api/v1/enroll",
        f"enrolling {device.hostname}",
        json=device.enroll_request(token, config.agent_version),
    )
    if response.status_code != 201:
        raise CliError(
            f"the collector refused to enroll {device.hostname}: HTTP {response.status_code} "
            f"{_error_message(response)}"
        )
    answer = response.json()
    return {"device_id": str(answer["device_id"]), "device_token": str(answer["device_token"])}


def _send(
    client: httpx.Client, server: str, path: Path, identity: dict[str, str]
) -> tuple[int, bool]:
    import gzip
    import json
    from datetime import UTC, datetime

    from dexscope.cli import CliError

    raw = path.read_bytes()
    batch = json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)
    batch["device_id"] = identity["device_id"]
    batch["sent_at"] = datetime.now(UTC).isoformat()
    body = gzip.compress(json.dumps(batch, separators=(",", ":")).encode(), compresslevel=5)
    response = _post(
        client,
        f"{server}/api/v1/ingest",
        f"batch {path.name}",
        content=body,
        headers={
            "Authorization": f"Bearer {identity['device_token']}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    if not 200 <= response.status_code < 300:
        raise CliError(
            f"the collector refused {path.name}: HTTP {response.status_code} "
            f"{_error_message(response)}"
        )
    answer = response.json()
    return int(answer.get("accepted", 0)), bool(answer.get("duplicate", False))
