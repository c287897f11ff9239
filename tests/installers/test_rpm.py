"""The .rpm: built with nfpm (offline) from the frozen agent, checked with rpmlint and rpm.

rpmlint must report no error and no warning beyond the commented filters of
``installers/linux/rpm/rpmlintrc``; the header carries the conffiles as
``%config(noreplace)`` and the scriptlets; and the package installs into, verifies in and
erases from a throw-away root (``rpm --root``, its own database; scriptlets are not run
there, as they need a chroot with a shell, useradd and systemd). The host's rpm database
(if any) is never used.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.installers.conftest import INSTALLERS, tool

pytestmark = pytest.mark.installers


def rpm_query(rpm: str, package: Path, *query: str) -> str:
    return subprocess.run(
        [rpm, "-qp", *query, str(package)], capture_output=True, text=True, check=True, timeout=120
    ).stdout


# setup builds the frozen agent and packages once per session: minutes on a busy machine
@pytest.mark.timeout(900)
def test_rpmlint_is_clean(rpm_package: Path) -> None:
    rpmlint = tool("rpmlint", "rpmlint")
    done = subprocess.run(
        [rpmlint, "-r", str(INSTALLERS / "linux" / "rpm" / "rpmlintrc"), str(rpm_package)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 errors, 0 warnings" in done.stdout, done.stdout


def test_header_conffiles_and_scriptlets(rpm_package: Path) -> None:
    rpm = tool("rpm", "rpm")
    assert rpm_query(rpm, rpm_package, "--queryformat", "%{NAME} %{VERSION} %{RELEASE}") == (
        "dexscope-agent 0.1.0 1"
    )
    assert rpm_query(rpm, rpm_package, "-c").split() == [
        "/etc/dexscope/agent.toml",
        "/etc/xdg/autostart/dexscope-survey-helper.desktop",
    ]
    # noreplace: an edited agent.toml survives upgrades (the new one lands as .rpmnew)
    flags = rpm_query(rpm, rpm_package, "--queryformat", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]")
    assert "/etc/dexscope/agent.toml cn" in flags
    scripts = rpm_query(rpm, rpm_package, "--scripts")
    for needle in ("useradd --system", "write-enroll-env", "userdel dexscope", "rm -rf /var/lib"):
        assert needle in scripts, needle
    listing = rpm_query(rpm, rpm_package, "-lv")
    assert "/usr/lib/systemd/system/dexscope-agent.service" in listing
    assert any(
        line.startswith("-rwxr-xr-x") and line.endswith("/opt/dexscope/dexscope-agent")
        for line in listing.splitlines()
    )


def test_installs_verifies_and_erases_in_a_throwaway_root(
    rpm_package: Path, tmp_path: Path
) -> None:
    rpm = tool("rpm", "rpm")
    root = tmp_path / "root"
    root.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [rpm, "--root", str(root), "--dbpath", "/var/lib/rpm", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert run("--initdb").returncode == 0
    # --nodeps: the empty root has no shadow-utils or systemd; --noscripts: no chroot shell
    done = run("-i", "--nodeps", "--noscripts", str(rpm_package))
    assert done.returncode == 0, done.stderr
    assert (root / "opt" / "dexscope" / "dexscope-agent").stat().st_mode & 0o111
    assert (root / "etc" / "dexscope" / "agent.toml").is_file()
    assert run("-q", "dexscope-agent").stdout.strip() == "dexscope-agent-0.1.0-1.x86_64"
    verified = run("-V", "--nodeps", "--noscripts", "dexscope-agent")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    erased = run("-e", "--nodeps", "--noscripts", "dexscope-agent")
    assert erased.returncode == 0, erased.stderr
    assert not (root / "opt" / "dexscope" / "dexscope-agent").exists()
    assert run("-q", "dexscope-agent").returncode != 0
