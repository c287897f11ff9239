"""The Linux packages' life in a throw-away Debian root: install, upgrade, remove, purge.

A minimal Debian (``debootstrap --variant=minbase``, the host's release) is unpacked into a
temporary folder and the package is driven with that root's own ``dpkg`` (``chroot``): the
host's package database is never touched. The debootstrap download is cached as a tarball
in ``/var/cache/dexscope-test/`` (``DEXSCOPE_TEST_CACHE`` to move it), keyed by release,
variant and extra packages, and made again when absent (it needs the Debian archive: about
20 s to download, 20 s to unpack, measured 2026-12-02). Needs root (chroot); without root,
debootstrap or the archive, the tests skip (under ``CI=true`` they fail).

Checked: a silent install with the parameters in the environment creates the user, the
0600 enrollment file and the enabled unit; an upgrade without parameters keeps an
admin-edited conffile without a prompt (stdin closed) and the remembered parameters; a seed
file's values replace them on a later upgrade; remove keeps configuration, purge removes
everything the package created (files, state, user, group). The .rpm's scriptlets run
for real in the same root too (``rpm --root`` runs them chrooted, with the root's own
useradd): user, enrollment file, and everything gone after ``rpm -e``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.installers.conftest import cached, need, tool

pytestmark = pytest.mark.installers

MIRROR = "http://deb.debian.org/debian"
INCLUDE = "adduser,init-system-helpers"


def release() -> str:
    """The host's Debian release (``VERSION_CODENAME``), bookworm when unknown."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "bookworm"
    match = re.search(r"^VERSION_CODENAME=\"?(\w+)", text, re.M)
    return match.group(1) if match else "bookworm"


def cached_tarball() -> Path:
    """The debootstrap tarball for this release, downloaded once and kept in the cache."""
    debootstrap = tool("debootstrap", "debootstrap")
    suite = release()

    def download(partial: Path, work: Path) -> None:
        done = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={INCLUDE}",
                f"--make-tarball={partial}",
                suite,
                str(work),
                MIRROR,
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        need(done.returncode == 0, f"debootstrap could not download {suite}: {done.stderr[-300:]}")

    name = f"debootstrap-{suite}-minbase-{INCLUDE.replace(',', '+')}.tgz"
    return cached(name, download, partial_suffix=".tgz")


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh minimal Debian root, unpacked from the cached debootstrap tarball."""
    need(os.geteuid() == 0, "the install tests need root (chroot into a throw-away root)")
    tarball = cached_tarball()
    root = tmp_path_factory.mktemp("debian-root") / "root"
    done = subprocess.run(
        [
            tool("debootstrap", "debootstrap"),
            "--variant=minbase",
            f"--include={INCLUDE}",
            f"--unpack-tarball={tarball}",
            release(),
            str(root),
            MIRROR,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root


@pytest.fixture(scope="module")
def upgrade_deb(
    packages: ModuleType, frozen_agent: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The same agent as a later Debian revision (-2): an upgrade of ``deb``."""
    built: Path = packages.build_deb(frozen_agent, tmp_path_factory.mktemp("deb2"), revision=2)
    return built


def dpkg(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the root's own dpkg in it; stdin closed, so any prompt would fail the test."""
    done = subprocess.run(
        ["chroot", str(root), "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        + [f"{k}={v}" for k, v in (env or {}).items()]
        + ["dpkg", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def env_values(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if line and line[0] != "#"
    )


def accounts(root: Path) -> tuple[bool, bool]:
    users = (root / "etc" / "passwd").read_text()
    groups = (root / "etc" / "group").read_text()
    return bool(re.search(r"^dexscope:", users, re.M)), bool(re.search(r"^dexscope:", groups, re.M))


def _assert_survey_box(root: Path) -> None:
    """The shared survey box: 0755 and the service account's, outside the state folder."""
    box = root / "var/lib/dexscope-survey"
    ids = {
        line.split(":")[0]: (int(line.split(":")[2]), int(line.split(":")[3]))
        for line in (root / "etc/passwd").read_text().splitlines()
    }
    assert box.is_dir() and stat.S_IMODE(box.stat().st_mode) == 0o755
    assert (box.stat().st_uid, box.stat().st_gid) == ids["dexscope"]


# setup builds the frozen agent and packages once per session: minutes on a busy machine
@pytest.mark.timeout(900)
def test_install_upgrade_remove_purge(debian_root: Path, deb: Path, upgrade_deb: Path) -> None:
    root = debian_root
    for package in (deb, upgrade_deb):
        shutil.copy(package, root / "tmp" / package.name)
    etc = root / "etc" / "dexscope"

    # 1. silent install, parameters in the environment
    dpkg(
        root,
        "-i",
        f"/tmp/{deb.name}",
        env={
            "DEXSCOPE_SERVER_URL": "https://dex.example.com",
            "DEXSCOPE_ENROLL_TOKEN": "dxe_first",
            "DEXSCOPE_TAGS": "site=paris",
        },
    )
    assert accounts(root) == (True, True)
    passwd = (root / "etc" / "passwd").read_text()
    assert re.search(
        r"^dexscope:x:\d+:\d+:[^:]*:/var/lib/dexscope:/usr/sbin/nologin$", passwd, re.M
    )
    enroll = etc / "enroll.env"
    assert stat.S_IMODE(enroll.stat().st_mode) == 0o600 and enroll.stat().st_uid == 0
    assert env_values(enroll)["DEXSCOPE_ENROLL_TOKEN"] == "dxe_first"
    wants = root / "etc/systemd/system/multi-user.target.wants/dexscope-agent.service"
    assert wants.is_symlink()  # enabled (started at boot; no systemd runs in the chroot)
    assert (root / "opt/dexscope/dexscope-agent").stat().st_mode & 0o111
    _assert_survey_box(root)

    # 2. the admin edits the conffile; an upgrade without parameters keeps it, no prompt
    shipped = (etc / "agent.toml").read_text()
    (etc / "agent.toml").write_text(shipped + '\npersona_hint = "developer"\n')
    out = dpkg(root, "-i", f"/tmp/{upgrade_deb.name}")
    assert "Configuration file" not in out  # dpkg's conffile prompt never appeared
    assert (etc / "agent.toml").read_text().endswith('persona_hint = "developer"\n')
    assert env_values(enroll)["DEXSCOPE_SERVER_URL"] == "https://dex.example.com"
    assert env_values(enroll)["DEXSCOPE_TAG_ARGS"] == "--tag=site=paris"
    status = dpkg(root, "-s", "dexscope-agent")
    assert re.search(r"^Version: .*-2$", status, re.M)

    # 3. a seed file (as Ansible places it) changes the parameters at the next configure
    (etc / "seed.env").write_text("DEXSCOPE_ENROLL_TOKEN=dxe_seeded\nDEXSCOPE_TAGS=site=lyon\n")
    dpkg(root, "-i", f"/tmp/{upgrade_deb.name}")
    assert env_values(enroll)["DEXSCOPE_ENROLL_TOKEN"] == "dxe_seeded"
    assert env_values(enroll)["DEXSCOPE_TAGS"] == "site=lyon"
    assert (etc / "agent.toml").read_text().endswith('persona_hint = "developer"\n')
    (root / "var/lib/dexscope").mkdir(exist_ok=True)  # as systemd's StateDirectory= would
    (root / "var/lib/dexscope/identity.json").write_text("{}")

    # 4. remove: the program goes, configuration, state and user stay
    dpkg(root, "-r", "dexscope-agent")
    assert not (root / "opt/dexscope").exists()
    assert (etc / "agent.toml").is_file() and enroll.is_file()
    assert accounts(root) == (True, True)

    # 5. purge: everything the package created goes
    dpkg(root, "-P", "dexscope-agent")
    assert not etc.exists()
    assert not (root / "var/lib/dexscope").exists()
    assert not (root / "var/lib/dexscope-survey").exists()
    assert accounts(root) == (False, False)
    assert not wants.exists()
    leftovers = [
        p
        for p in (
            "opt/dexscope",
            "usr/libexec/dexscope-agent",
            "lib/systemd/system/dexscope-agent.service",
            "etc/xdg/autostart/dexscope-survey-helper.desktop",
            "usr/sbin/dexscope-agent",
        )
        if (root / p).exists() or (root / p).is_symlink()
    ]
    assert not leftovers
    assert "dexscope-agent" not in dpkg(root, "-l")


# setup builds the frozen agent and packages once per session: minutes on a busy machine
@pytest.mark.timeout(900)
def test_rpm_scriptlets(debian_root: Path, rpm_package: Path) -> None:
    rpm = tool("rpm", "rpm")
    root = debian_root

    def run(*args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [rpm, "--root", str(root), "--dbpath", "/var/lib/rpm", *args],
            env={"PATH": os.environ["PATH"], **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    run("--initdb")
    # --nodeps: the Debian root's rpm database knows none of its packages (shadow, systemd)
    run(
        "-i",
        "--nodeps",
        str(rpm_package),
        env={"DEXSCOPE_SERVER_URL": "https://rpm.example.com", "DEXSCOPE_ENROLL_TOKEN": "dxe_r"},
    )
    enroll = root / "etc" / "dexscope" / "enroll.env"
    assert stat.S_IMODE(enroll.stat().st_mode) == 0o600
    assert env_values(enroll)["DEXSCOPE_SERVER_URL"] == "https://rpm.example.com"
    assert accounts(root) == (True, True)
    assert (root / "usr/lib/systemd/system/dexscope-agent.service").is_file()
    _assert_survey_box(root)
    (root / "var/lib/dexscope").mkdir(exist_ok=True)
    (root / "var/lib/dexscope/identity.json").write_text("{}")

    run("-e", "--nodeps", "dexscope-agent")
    assert not (root / "etc" / "dexscope").exists()
    assert not (root / "var/lib/dexscope").exists()
    assert not (root / "opt/dexscope/dexscope-agent").exists()
    assert not (root / "var/lib/dexscope-survey").exists()
    assert accounts(root) == (False, False)
