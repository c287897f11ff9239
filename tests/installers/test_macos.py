"""macOS: the launchd plists, the configuration profile, the pkg scripts and the launcher.

The plists and the ``.mobileconfig`` are parsed with plistlib (as ``plutil -lint`` would on a
Mac) and their keys checked; the pkg scripts are checked for shell syntax; the launcher
(``dexscope-launch``) is run for real with a stand-in for macOS's ``plutil`` (reading the
profile's managed preferences with plistlib) and a stand-in agent that records its
arguments and environment, so the profile -> command line wiring is tested here too.
"""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.installers.conftest import INSTALLERS

MACOS = INSTALLERS / "macos"
BASE = "/Library/Application Support/DexScope"

FAKE_PLUTIL = """\
import plistlib, sys
# plutil -extract KEYPATH raw -o - FILE
keypath, path = sys.argv[2], sys.argv[6]
value = plistlib.load(open(path, "rb"))
try:
    for part in keypath.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
except (KeyError, IndexError, ValueError):
    sys.exit(1)
print(value)
"""

FAKE_AGENT = """\
import json, os, sys
json.dump({"argv": sys.argv[1:], "server": os.environ.get("DEXSCOPE_SERVER_URL"),
           "token": os.environ.get("DEXSCOPE_ENROLL_TOKEN")}, open(os.environ["OUT"], "w"))
"""


def load_plist(name: str) -> dict[str, Any]:
    with (MACOS / name).open("rb") as handle:
        value = plistlib.load(handle)
    assert isinstance(value, dict)
    return value


def test_the_daemon_plist() -> None:
    daemon = load_plist("com.dexscope.agent.plist")
    assert daemon["Label"] == "com.dexscope.agent"
    assert daemon["ProgramArguments"] == [f"{BASE}/Agent/dexscope-launch"]
    assert daemon["RunAtLoad"] is True and daemon["KeepAlive"] == {"SuccessfulExit": False}
    assert daemon["ProcessType"] == "Background" and daemon["LowPriorityIO"] is True
    assert daemon["Nice"] > 0 and daemon["ThrottleInterval"] >= 10
    assert daemon["EnvironmentVariables"]["DEXSCOPE_STATE_DIR"] == f"{BASE}/state"
    assert daemon["Umask"] == 0o077


def test_the_survey_helper_launch_agent() -> None:
    helper = load_plist("com.dexscope.survey-helper.plist")
    assert helper["Label"] == "com.dexscope.survey-helper"
    assert helper["ProgramArguments"] == [
        f"{BASE}/Agent/dexscope-agent",
        "agent",
        "survey-helper",
        "--box",
        f"{BASE}/survey",  # the box the daemon shares with every account, not its state
    ]
    assert helper["LimitLoadToSessionType"] == ["Aqua"]  # user sessions with a screen


def test_the_configuration_profile() -> None:
    profile = load_plist("com.dexscope.agent.mobileconfig")
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadScope"] == "System" and profile["PayloadVersion"] == 1
    (payload,) = profile["PayloadContent"]
    assert payload["PayloadType"] == "com.dexscope.agent"  # the managed preferences domain
    assert payload["ServerURL"].startswith("https://")
    assert isinstance(payload["EnrollToken"], str)
    assert all("=" in tag for tag in payload["Tags"])
    uuids = [profile["PayloadUUID"], payload["PayloadUUID"]]
    assert len(set(uuids)) == 2 and all(len(u) == 36 and u.count("-") == 4 for u in uuids)
    assert profile["PayloadIdentifier"] != payload["PayloadIdentifier"]


@pytest.mark.parametrize(
    "script", ["scripts/preinstall", "scripts/postinstall", "uninstall.sh", "build-pkg.sh"]
)
def test_pkg_scripts_are_valid_shell(script: str) -> None:
    path = MACOS / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    assert path.read_text().startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", str(path)], check=False).returncode == 0


def launch(tmp_path: Path, prefs: dict[str, Any] | None, seed: str | None = None) -> Any:
    """Run dexscope-launch with stand-ins; what the agent got (argv, server, token)."""
    base = tmp_path / "DexScope"
    (base / "state").mkdir(parents=True, exist_ok=True)
    (tmp_path / "plutil").write_text(f"#!{sys.executable}\n{FAKE_PLUTIL}")
    (tmp_path / "agent").write_text(f"#!{sys.executable}\n{FAKE_AGENT}")
    for name in ("plutil", "agent"):
        (tmp_path / name).chmod(0o755)
    prefs_path = tmp_path / "com.dexscope.agent.plist"
    if prefs is not None:
        prefs_path.write_bytes(plistlib.dumps(prefs))
    if seed is not None:
        (base / "seed.env").write_text(seed)
    out = tmp_path / "out.json"
    done = subprocess.run(
        ["sh", str(MACOS / "dexscope-launch")],
        env={
            "PATH": os.environ["PATH"],
            "DEXSCOPE_BASE": str(base),
            "DEXSCOPE_PREFS": str(prefs_path),
            "DEXSCOPE_PLUTIL": str(tmp_path / "plutil"),
            "DEXSCOPE_AGENT_BIN": str(tmp_path / "agent"),
            "OUT": str(out),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        return done
    return json.loads(out.read_text())


def test_the_launcher_passes_the_profile_to_the_agent(tmp_path: Path) -> None:
    profile = load_plist("com.dexscope.agent.mobileconfig")["PayloadContent"][0]
    prefs = {k: profile[k] for k in ("ServerURL", "EnrollToken", "Tags")}
    got = launch(tmp_path, prefs)
    assert got["argv"] == [
        "agent",
        "run",
        "--state-dir",
        str(tmp_path / "DexScope" / "state"),
        "--survey-box",
        str(tmp_path / "DexScope" / "survey"),
        "--tag=site=paris",
        "--tag=dept=finance",
    ]
    # secrets travel in the environment, not in argv (which every user's ps shows)
    assert (got["server"], got["token"]) == (prefs["ServerURL"], prefs["EnrollToken"])


def test_the_launcher_falls_back_to_the_seed_file(tmp_path: Path) -> None:
    seed = 'DEXSCOPE_SERVER_URL="https://seed.example.com"\nDEXSCOPE_TAGS=site=lyon,floor=2\n'
    (tmp_path / "DexScope").mkdir()
    (tmp_path / "DexScope" / "agent.toml").write_text("# settings\n")
    got = launch(tmp_path, None, seed)
    assert got["server"] == "https://seed.example.com" and got["token"] is None
    assert got["argv"][6:] == [
        "--config",
        str(tmp_path / "DexScope" / "agent.toml"),
        "--tag=site=lyon",
        "--tag=floor=2",
    ]


@pytest.mark.parametrize(
    "prefs",
    [
        {"ServerURL": "https://x.example.com/$(touch PWNED)"},
        {"EnrollToken": "dxe_`touch PWNED`"},
        {"Tags": ["site=paris --server=https://evil"]},
        {"Tags": ["site=a,b;touch PWNED"]},
    ],
)
def test_the_launcher_refuses_unsafe_settings(tmp_path: Path, prefs: dict[str, Any]) -> None:
    done = launch(tmp_path, prefs)
    assert isinstance(done, subprocess.CompletedProcess), done
    assert done.returncode == 2 and done.stderr.startswith("dexscope-launch: ")
    assert not (tmp_path / "out.json").exists() and not any(tmp_path.rglob("PWNED"))
