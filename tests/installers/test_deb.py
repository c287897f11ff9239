"""The Linux .deb: built with dpkg-deb from the frozen agent, checked with the real tools.

lintian (errors and warnings fail; the package's overrides are each commented), the
package's files, modes, owners and conffiles (``dpkg-deb -c/-I``), the systemd unit
(``systemd-analyze verify`` and the offline exposure score), the unit's command line run
for real against a loopback collector (so the unit is wired to what the agent's CLI
accepts), and the enrollment helper the maintainer scripts call (environment > seed file >
previous values; no injection; mode 0600; the conffile untouched). Nothing here touches
the host's package database: the package is only built, inspected and extracted.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import re
import shlex
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.installers.conftest import INSTALLERS, tool

LINUX = INSTALLERS / "linux"
UNIT = "lib/systemd/system/dexscope-agent.service"
ENROLL_HELPER = LINUX / "write-enroll-env"
EXPOSURE_BOUND = 2.0
"""Highest ``systemd-analyze security`` exposure accepted (measured 1.6 on systemd 252)."""

pytestmark = pytest.mark.installers


def unit_settings(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, values in order (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


# setup builds the frozen agent and packages once per session: minutes on a busy machine
@pytest.mark.timeout(900)
def test_lintian_is_clean(deb: Path) -> None:
    lintian = tool("lintian", "lintian")
    done = subprocess.run(
        [lintian, "--fail-on", "error,warning", "--tag-display-limit", "0", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    tags = [line for line in done.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert done.returncode == 0 and not tags, done.stdout + done.stderr
    # every override in the package carries a comment saying why
    overrides = (LINUX / "debian" / "lintian-overrides").read_text(encoding="utf-8")
    blocks = [b for b in overrides.split("\n\n") if "dexscope-agent:" in b]
    assert blocks and all(b.lstrip().startswith("#") for b in blocks)


def test_files_modes_and_conffiles(deb: Path) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    entries: dict[str, tuple[str, str]] = {}
    for line in listing.splitlines():
        fields = line.split(None, 5)
        mode, owner, path = fields[0], fields[1], fields[5].split(" -> ")[0]
        entries[path.removeprefix(".").rstrip("/") or "/"] = (mode, owner)
    assert {owner for _, owner in entries.values()} == {"root/root"}
    expected = {
        "/opt/dexscope/dexscope-agent": "-rwxr-xr-x",
        "/lib/systemd/system/dexscope-agent.service": "-rw-r--r--",
        "/etc/dexscope/agent.toml": "-rw-r--r--",
        "/etc/xdg/autostart/dexscope-survey-helper.desktop": "-rw-r--r--",
        "/usr/libexec/dexscope-agent/write-enroll-env": "-rwxr-xr-x",
        "/usr/share/doc/dexscope-agent/copyright": "-rw-r--r--",
        "/usr/sbin/dexscope-agent": "lrwxrwxrwx",
    }
    for path, mode in expected.items():
        assert entries.get(path, ("missing",))[0] == mode, path
    assert any(p.startswith("/opt/dexscope/_internal/libpython3") for p in entries)
    # the enrollment secret and the state are made on the machine, never shipped
    assert not any(
        p.startswith(("/var/lib", "/etc/dexscope/enroll", "/etc/dexscope/seed")) for p in entries
    )
    assert not any(m[0][0] == "-" and m[0][8] == "w" for m in entries.values())  # no o+w

    info = subprocess.run(
        ["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"^ Package: dexscope-agent$", info, re.M)
    assert re.search(r"^ Depends: .*\badduser\b", info, re.M)
    for script in ("postinst", "prerm", "postrm"):
        assert re.search(rf"^\s+\d+ bytes,\s+\d+ lines\s+\*\s+{script}\s+#!/bin/sh$", info, re.M)
    conffiles = subprocess.run(
        ["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert conffiles == [
        "/etc/dexscope/agent.toml",
        "/etc/xdg/autostart/dexscope-survey-helper.desktop",
    ]


def test_maintainer_scripts_never_edit_a_conffile(deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path / "DEBIAN")], check=True)
    for name in ("postinst", "prerm", "postrm"):
        script = tmp_path / "DEBIAN" / name
        assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0, name
        code = [
            line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")
        ]
        assert not any("agent.toml" in line or "autostart" in line for line in code), name
    postrm = (tmp_path / "DEBIAN" / "postrm").read_text()
    purge = postrm.split('if [ "$1" = "purge" ]; then', 1)[1]
    for created in ("/etc/dexscope/enroll.env", "/var/lib/dexscope-survey", "deluser", "delgroup"):
        assert created in purge, created
    postinst = (tmp_path / "DEBIAN" / "postinst").read_text()
    assert "adduser --system" in postinst and "write-enroll-env" in postinst


def test_the_unit_verifies(deb_tree: Path, tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    unit = (deb_tree / UNIT).read_text(encoding="utf-8")
    # verify checks that ExecStart's program exists: point it at the extracted copy
    local = tmp_path / "dexscope-agent.service"
    local.write_text(unit.replace("/opt/dexscope/", f"{deb_tree}/opt/dexscope/"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(local)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    settings = unit_settings(unit)
    for key, value in {
        "User": "dexscope",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "StateDirectory": "dexscope",
        "EnvironmentFile": "/etc/dexscope/enroll.env",
        "CPUSchedulingPolicy": "batch",
        "IOSchedulingClass": "idle",
        "CapabilityBoundingSet": "",
    }.items():
        assert settings.get(key) == [value], key
    assert int(settings["Nice"][0]) > 0
    # besides the StateDirectory, the only writable path is the shared survey box
    assert settings["ReadWritePaths"] == ["-/var/lib/dexscope-survey"]
    (start,) = settings["ExecStart"]
    assert "--state-dir /var/lib/dexscope --survey-box /var/lib/dexscope-survey" in start


def test_the_units_exposure_is_low(deb_tree: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(deb_tree / UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert match, done.stdout + done.stderr
    score = float(match.group(1))
    assert 0 < score <= EXPOSURE_BOUND, done.stdout


class _Collector(http.server.BaseHTTPRequestHandler):
    """A loopback collector that records the enrollment request and refuses it."""

    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        type(self).seen.append({"path": self.path, "body": json.loads(body)})
        reply = json.dumps({"error": {"code": "bad_token", "message": "unknown token"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def collector() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Collector.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.seen
    finally:
        server.shutdown()
        server.server_close()


def enroll_env(
    tmp_path: Path, env: dict[str, str], seed: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the enrollment helper with /etc/dexscope replaced by ``tmp_path/etc``."""
    conf = tmp_path / "etc"
    conf.mkdir(exist_ok=True)
    if seed is not None:
        (conf / "seed.env").write_text(seed)
    return subprocess.run(
        ["sh", str(ENROLL_HELPER)],
        env={"PATH": os.environ["PATH"], "DEXSCOPE_CONF_DIR": str(conf), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def env_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile= read as systemd does for our plain values: KEY=VALUE lines."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value.strip()
    return values


def test_the_units_command_line_reaches_the_collector(
    deb_tree: Path, tmp_path: Path, collector: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = collector
    done = enroll_env(
        tmp_path,
        {
            "DEXSCOPE_SERVER_URL": url,
            "DEXSCOPE_ENROLL_TOKEN": "dxe_test-Token_1",
            "DEXSCOPE_TAGS": "site=paris,dept=fin.ops",
        },
    )
    assert done.returncode == 0, done.stderr
    env = env_file(tmp_path / "etc" / "enroll.env")
    unit = unit_settings((deb_tree / UNIT).read_text())
    (exec_start,) = unit["ExecStart"]
    state = tmp_path / "state"
    # systemd: ${VAR} is one word, unbraced $VAR is split at whitespace (no shell)
    argv: list[str] = []
    for word in shlex.split(exec_start):
        if word.startswith("$"):
            argv += env.get(word[1:], "").split()
        else:
            argv.append(word)
    argv = [
        a.replace("/opt/dexscope/", f"{deb_tree}/opt/dexscope/")
        .replace("/etc/dexscope/", f"{deb_tree}/etc/dexscope/")
        .replace("/var/lib/dexscope", str(state))
        for a in argv
    ]
    assert argv[-2:] == ["--tag=site=paris", "--tag=dept=fin.ops"]
    unit_env = dict(v.split("=", 1) for v in unit["Environment"])
    run_env = {
        "PATH": "/usr/bin:/bin",
        **{k: v.replace("/var/lib/dexscope", str(state)) for k, v in unit_env.items()},
        **env,
    }
    ran = subprocess.run(
        [*argv, "--once"], env=run_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr  # refused by our collector
    assert "refused" in ran.stderr.lower() or "401" in ran.stderr or "token" in ran.stderr
    (request,) = [s for s in seen if s["path"] == "/api/v1/enroll"]
    assert request["body"]["enrollment_token"] == "dxe_test-Token_1"
    assert request["body"]["tags"] == {"site": "paris", "dept": "fin.ops"}


def test_enrollment_helper_precedence_and_memory(tmp_path: Path) -> None:
    seed = (
        "# placed by Ansible\n"
        'export DEXSCOPE_SERVER_URL="https://seed.example.com"\n'
        "DEXSCOPE_ENROLL_TOKEN='dxe_seed'\n"
        "DEXSCOPE_TAGS=site=lyon\n"
    )
    done = enroll_env(tmp_path, {"DEXSCOPE_SERVER_URL": "https://env.example.com"}, seed)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "etc" / "enroll.env"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert env_file(out) == {
        "DEXSCOPE_SERVER_URL": "https://env.example.com",  # the environment wins
        "DEXSCOPE_ENROLL_TOKEN": "dxe_seed",
        "DEXSCOPE_TAGS": "site=lyon",
        "DEXSCOPE_TAG_ARGS": "--tag=site=lyon",
    }
    # an upgrade without parameters (and the seed gone) keeps the previous values
    (tmp_path / "etc" / "seed.env").unlink()
    again = enroll_env(tmp_path, {"DEXSCOPE_TAGS": "site=nice,floor=3"})
    assert again.returncode == 0, again.stderr
    assert env_file(out)["DEXSCOPE_SERVER_URL"] == "https://env.example.com"
    assert env_file(out)["DEXSCOPE_ENROLL_TOKEN"] == "dxe_seed"
    assert env_file(out)["DEXSCOPE_TAG_ARGS"] == "--tag=site=nice --tag=floor=3"
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["enroll.env"]


def test_enrollment_helper_without_parameters_writes_nothing(tmp_path: Path) -> None:
    done = enroll_env(tmp_path, {})
    assert done.returncode == 0 and "stays inactive" in done.stderr
    assert not (tmp_path / "etc" / "enroll.env").exists()


@pytest.mark.parametrize(
    "env",
    [
        {"DEXSCOPE_SERVER_URL": "https://x.example.com/$(touch PWNED)"},
        {"DEXSCOPE_SERVER_URL": "https://x.example.com --server=https://evil"},
        {"DEXSCOPE_SERVER_URL": "ftp://x.example.com"},
        {"DEXSCOPE_ENROLL_TOKEN": "dxe_a`touch PWNED`"},
        {"DEXSCOPE_ENROLL_TOKEN": "dxe_a\nDEXSCOPE_SERVER_URL=https://evil"},
        {"DEXSCOPE_TAGS": "site=paris --server=https://evil"},
        {"DEXSCOPE_TAGS": "site=paris;touch PWNED"},
        {"DEXSCOPE_TAGS": "=novalue"},
    ],
)
def test_enrollment_helper_refuses_unsafe_values(tmp_path: Path, env: dict[str, str]) -> None:
    done = enroll_env(tmp_path, env)
    assert done.returncode == 1 and done.stderr.startswith("dexscope-agent: DEXSCOPE_")
    assert not (tmp_path / "etc" / "enroll.env").exists()
    assert not any(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()


def test_the_deb_is_reproducible(
    packages: ModuleType,
    frozen_agent: Path,
    deb: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a second build of the same frozen folder with the first one's SOURCE_DATE_EPOCH (every
    # file's mtime in the package) is byte for byte the same package
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        mtimes = {member.mtime for member in archive.getmembers()}
    assert len(mtimes) == 1, "every file of the package carries SOURCE_DATE_EPOCH"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(mtimes.pop()))
    again = packages.build_deb(frozen_agent, tmp_path)
    assert again.name == deb.name
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(deb.read_bytes()).digest()
