"""Dashboard benchmark: every page's server time at fleet scale on PostgreSQL.

Usage: ``python bench/dashboard.py [--devices 100000] [--days 30] [--requests 20]
[--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep]``

Creates a fresh PostgreSQL database, migrates it, and loads — straight into the tables with
``COPY``, as the scoring job would have left them — ``--devices`` devices (5 personas, 12
sites, 20 groups) and ``--days`` days of rollups: ``device_day_scores`` (every device on
its working days, 20 % on weekends; a device quality drawn per device, daily noise, a few
bad devices; sub-scores, minutes lost per component, points lost per metric, counts) and
``device_app_days`` (3-6 of 30 apps per device-day, Zipf-weighted, with hangs, crashes and
minutes). Plus 60 alerts and one survey campaign. It is a read benchmark: ingest and
scoring are measured by ``bench/ingest.py`` and ``bench/scoring.py``.

Then it starts a real ``dexscope collector serve``, signs in through the login form and
requests every page ``--requests`` times over HTTP on loopback, and prints per page the
first (cold: nothing cached since the last scoring run) and the p50 / p95 / max of all
requests. The database is dropped afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scoring.personas import METRICS  # noqa: E402
from scoring.time_lost import COMPONENTS  # noqa: E402

PERSONAS = ["knowledge_worker", "developer", "contact_centre_agent", "field_worker", "executive"]
PERSONA_P = [0.55, 0.15, 0.15, 0.1, 0.05]
SITES = [
    "London",
    "Paris",
    "New York",
    "Chicago",
    "Sydney",
    "Bangalore",
    "Berlin",
    "Madrid",
    "Toronto",
    "Singapore",
    "Tokyo",
    "Sao Paulo",
]
APPS = [
    "outlook.exe",
    "teams.exe",
    "chrome.exe",
    "msedge.exe",
    "excel.exe",
    "winword.exe",
    "powerpnt.exe",
    "onedrive.exe",
    "explorer.exe",
    "acrobat.exe",
    "code.exe",
    "slack.exe",
    "zoom.exe",
    "sapgui.exe",
    "contoso-crm.exe",
    "contoso-erp.exe",
    "citrix.exe",
    "firefox.exe",
    "notepad++.exe",
    "putty.exe",
    "idea64.exe",
    "docker.exe",
    "tableau.exe",
    "salesforce.exe",
    "webex.exe",
    "vlc.exe",
    "7zfm.exe",
    "snagit.exe",
    "visio.exe",
    "project.exe",
]
PASSWORD = "bench password 0123"


def _dexscope(*args: str, input_text: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dexscope", *args],
        input=input_text,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"dexscope {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def _copy(conn: psycopg.Connection[Any], table: str, columns: list[str], data: io.StringIO) -> None:
    data.seek(0)
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while chunk := data.read(1 << 20):
            copy.write(chunk)


def load(
    conn: psycopg.Connection[Any], tenant: str, n_devices: int, n_days: int, seed: int
) -> dict[str, Any]:
    """Load devices and rollups with COPY; returns what the requests need."""
    rng = np.random.default_rng(seed)
    console = Console(stderr=True)
    today = datetime.now(UTC).date()
    end = today - timedelta(days=1)
    days = [end - timedelta(days=n_days - 1 - k) for k in range(n_days)]
    ids = [uuid.UUID(int=int(x)) for x in rng.integers(1, 2**62, n_devices)]
    persona = rng.choice(len(PERSONAS), n_devices, p=PERSONA_P)
    site = rng.integers(0, len(SITES), n_devices)
    group = rng.integers(0, 20, n_devices)
    now = datetime.now(UTC).isoformat()
    buf = io.StringIO()
    for i, dev in enumerate(ids):
        tags = json.dumps({"site": SITES[site[i]], "group": f"group-{group[i]:02d}"})
        host = f"{SITES[site[i]][:3].upper()}-LT{i:06d}"
        buf.write(
            f"{dev}\t{tenant}\t{host}\twindows\t10.0.22631\t{{}}\t0.1.0\t"
            f"{PERSONAS[persona[i]]}\t{PERSONAS[persona[i]]}\trule\t{tags}\t{now}\t{now}\n"
        )
    started = time.perf_counter()
    _copy(
        conn,
        "devices",
        [
            "id",
            "tenant_id",
            "hostname",
            "os",
            "os_version",
            "hardware",
            "agent_version",
            "persona_hint",
            "persona",
            "persona_source",
            "tags",
            "enrolled_at",
            "last_seen_at",
        ],
        buf,
    )
    conn.commit()
    console.print(f"devices: {n_devices:,} in {time.perf_counter() - started:.1f} s")
    quality = np.clip(rng.normal(82, 9, n_devices), 20, 100)
    quality[rng.random(n_devices) < 0.03] -= 35  # a few bad devices
    app_p = 1.0 / np.arange(1, len(APPS) + 1)
    app_p /= app_p.sum()
    dds_cols = [
        "device_id",
        "day",
        "tenant_id",
        "persona",
        "score",
        "startup",
        "responsiveness",
        "stability",
        "sentiment",
        "metrics",
        "points_lost",
        "sentiment_confidence",
        "active_s",
        "time_lost_min",
        "time_lost",
        "counts",
        "scoring_version",
        "computed_at",
    ]
    app_cols = [
        "device_id",
        "day",
        "app_name",
        "tenant_id",
        "persona",
        "score",
        "hangs",
        "crashes",
        "time_lost_min",
    ]
    rows = app_rows = 0
    started = time.perf_counter()
    for day in days:
        weekend = day.weekday() >= 5
        active = np.flatnonzero(rng.random(n_devices) < (0.2 if weekend else 0.93))
        n = len(active)
        score = np.clip(quality[active] + rng.normal(0, 7, n), 0, 100)
        subs = np.clip(score[:, None] + rng.normal(0, 8, (n, 4)), 0, 100)
        has_sentiment = rng.random(n) < 0.05
        lost = np.round(np.maximum(0, (100 - score)[:, None] * rng.dirichlet(np.ones(5), n)), 2)
        lost_min = np.round(
            rng.gamma(1.2, (100 - score) / 12)[:, None] * rng.dirichlet(np.ones(5), n), 2
        )
        buf = io.StringIO()
        for k in range(n):
            i = active[k]
            pts = dict(zip(METRICS, [0.0] * len(METRICS), strict=True))
            for j, m in enumerate(
                ("boot", "logon", "app_hang_rate", "app_crash_rate", "hang_duration")
            ):
                pts[m] = float(lost[k, j])
            metrics = {m: round(100 - pts[m] * 4, 1) for m in METRICS}
            minutes = dict(zip(COMPONENTS, lost_min[k].tolist(), strict=True))
            counts = {
                "boots": 1,
                "logons": 2,
                "hangs": int(lost[k, 2] > 3),
                "app_crashes": int(lost[k, 3] > 6),
                "system_crashes": 0,
                "probes": 4,
                "probe_failures": 0,
            }
            sentiment = f"{subs[k, 3]:.2f}" if has_sentiment[k] else "\\N"
            confidence = "0.8" if has_sentiment[k] else "\\N"
            buf.write(
                f"{ids[i]}\t{day}\t{tenant}\t{PERSONAS[persona[i]]}\t{score[k]:.3f}\t"
                f"{subs[k, 0]:.3f}\t{subs[k, 1]:.3f}\t{subs[k, 2]:.3f}\t{sentiment}\t"
                f"{json.dumps(metrics)}\t{json.dumps(pts)}\t"
                f"{confidence}\t{rng.uniform(3, 9) * 3600:.0f}\t"
                f"{sum(minutes.values()):.2f}\t{json.dumps(minutes)}\t{json.dumps(counts)}\t1\t{now}\n"
            )
        _copy(conn, "device_day_scores", dds_cols, buf)
        rows += n
        n_apps = rng.integers(3, 7, n)
        buf = io.StringIO()
        for k in range(n):
            i = active[k]
            picked = rng.choice(len(APPS), n_apps[k], replace=False, p=app_p)
            for a in picked:
                hangs = int(rng.poisson(0.15 * (1 + (100 - score[k]) / 20)))
                crashes = int(rng.random() < 0.02 * (1 + (100 - score[k]) / 20))
                app_score = max(0.0, 100 - 12 * hangs - 30 * crashes)
                app_minutes = hangs * 0.2 + crashes * 2.5
                buf.write(
                    f"{ids[i]}\t{day}\t{APPS[a]}\t{tenant}\t{PERSONAS[persona[i]]}\t"
                    f"{app_score:.1f}\t{hangs}\t{crashes}\t{app_minutes:.2f}\n"
                )
            app_rows += int(n_apps[k])
        _copy(conn, "device_app_days", app_cols, buf)
        conn.commit()
        console.print(
            f"  {day}: {n:,} device-days, total {rows:,} device-days and {app_rows:,} "
            f"app-days in {time.perf_counter() - started:.0f} s"
        )
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO scoring_watermarks (tenant_id, received_through, as_of, updated_at) "
            "VALUES (%s, now(), now(), now())",
            (tenant,),
        )
        for k in range(60):
            dev = ids[int(rng.integers(0, n_devices))]
            status = ("open", "acknowledged", "resolved")[k % 3]
            cur.execute(
                "INSERT INTO alerts (id, tenant_id, fingerprint, kind, scope, scope_key, metric, "
                "title, severity, status, onset, detected_at, updated_at, affected_count, "
                "affected_device_ids, evidence) VALUES (%s, %s, %s, 'change_point', 'device', "
                "%s, 'score', %s, %s, %s, now() - interval '3 days', now() - interval '2 days', "
                "now(), 1, %s, %s)",
                (
                    uuid.uuid4(),
                    tenant,
                    f"fp-{k}",
                    str(dev),
                    f"device {dev}: experience score below its baseline",
                    ("low", "medium", "high", "critical")[k % 4],
                    status,
                    json.dumps([str(dev)]),
                    json.dumps({"series": [{"day": str(d), "score": 70.0} for d in days[-14:]]}),
                ),
            )
    conn.commit()
    started = time.perf_counter()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.autocommit = False
    console.print(f"VACUUM ANALYZE in {time.perf_counter() - started:.0f} s")
    return {"device": str(ids[0]), "rows": rows, "app_rows": app_rows, "end": end}


def _create(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Migrate the new database, make the tenant and the login, load the rollups."""
    _dexscope("collector", "migrate", "--database-url", url)
    tenant = json.loads(
        _dexscope("admin", "create-tenant", "Bench", "--database-url", url, "--json")
    )
    _dexscope(
        "admin",
        "create-user",
        "bench@dexscope.test",
        "--role",
        "admin",
        "--tenant",
        tenant["tenant_id"],
        "--database-url",
        url,
        "--password-stdin",
        input_text=PASSWORD + "\n",
    )
    with psycopg.connect(url) as conn:
        loaded = load(conn, tenant["tenant_id"], args.devices, args.days, args.seed)
    return loaded


def _reused(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What the requests need from a database loaded by an earlier run."""
    row = conn.execute(
        "SELECT (SELECT device_id::text FROM device_day_scores LIMIT 1), "
        "(SELECT count(*) FROM device_day_scores), (SELECT count(*) FROM device_app_days), "
        "(SELECT max(day) FROM device_day_scores)"
    ).fetchone()
    assert row is not None
    return {"device": row[0], "rows": row[1], "app_rows": row[2], "end": row[3]}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "DEXSCOPE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an administrative connection; a new database is created beside it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", metavar="NAME", help="measure a database kept by an earlier --keep run"
    )
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    name = args.reuse or f"dexscope_bench_dash_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.postgres_url, autocommit=True)
    if not args.reuse:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = args.postgres_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    proc: subprocess.Popen[bytes] | None = None
    try:
        if args.reuse:
            _dexscope("collector", "migrate", "--database-url", url)
            with psycopg.connect(url) as conn:
                loaded = _reused(conn)
        else:
            loaded = _create(url, args)
        (REPO / "bench" / "results").mkdir(exist_ok=True)
        log = open(REPO / "bench" / "results" / "dashboard-collector.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dexscope",
                "collector",
                "serve",
                "--database-url",
                url,
                "--port",
                str(args.port),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            stdout=log,
            stderr=log,
        )
        server = f"http://127.0.0.1:{args.port}"
        for _ in range(200):
            try:
                if httpx.get(server + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        client = httpx.Client(base_url=server, timeout=120)
        login = client.get("/login")
        client.post(
            "/login",
            data={
                "email": "bench@dexscope.test",
                "password": PASSWORD,
                "csrf": login.cookies.get("dexscope_login_csrf") or "",
            },
        )
        assert "dexscope_session" in client.cookies, "sign-in failed"
        pages = {
            "overview (7 days)": "/",
            "overview (30 days)": "/?days=30",
            "overview, persona filter": "/?persona=developer",
            "persona": "/personas/knowledge_worker",
            "site": "/groups/site/London",
            "group": "/groups/group/group-03",
            "app": "/apps/teams.exe",
            "devices (worst first)": "/devices",
            "devices (by hostname, page 100)": "/devices?sort=hostname&page=100",
            "device": f"/devices/{loaded['device']}",
            "alerts": "/alerts?status=all",
            "surveys": "/surveys",
            "CSV: apps of the overview": "/?format=csv&table=apps",
        }
        table = Table(
            title=f"Dashboard server time, {args.devices:,} devices x {args.days} days "
            f"({loaded['rows']:,} device-days, {loaded['app_rows']:,} app-days), "
            f"{args.requests} requests per page"
        )
        for col in ("page", "cold (ms)", "p50 (ms)", "p95 (ms)", "max (ms)", "status"):
            table.add_column(col, justify="left" if col == "page" else "right")
        results = {}
        for label, path in pages.items():
            times = []
            status = 0
            for _ in range(args.requests):
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                status = response.status_code
            ordered = sorted(times)
            p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
            results[label] = {
                "cold": times[0],
                "p50": statistics.median(times),
                "p95": p95,
                "max": max(times),
                "status": status,
            }
            table.add_row(
                label,
                f"{times[0]:.0f}",
                f"{statistics.median(times):.0f}",
                f"{p95:.0f}",
                f"{max(times):.0f}",
                str(status),
            )
        Console().print(table)
        Console().print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, "
            f"{admin.execute('SHOW server_version').fetchone()[0]}"  # type: ignore[index]
        )
        out = REPO / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "dashboard.json").write_text(json.dumps(results, indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            console.print(f"kept database {name}")
        admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
