"""The .deb's service started by a real systemd: a throw-away Debian booted under qemu.

The other Linux tests install the package in a chroot, where no systemd runs. Here a minimal
Debian of the host's release with a kernel and systemd (``debootstrap``, cached in
``/var/cache/dexscope-test/`` as an installed root, ``DEXSCOPE_TEST_CACHE`` to move it) gets
the package installed silently with its parameters, is turned into an ext4 disk image
(``mke2fs -d``) and boots as a machine under ``qemu-system-x86_64`` (software emulation,
about a minute; no network card). A one-shot unit of the test, ordered
after the agent's, writes what systemd says about the agent to the serial console and
powers the machine off.

Checked: systemd started ``dexscope-agent.service`` at boot (enabled by the postinst) and it
is running as the ``dexscope`` user with no capabilities and ``NoNewPrivileges``; the unit's
hardening applied (the state folder 0700, the survey box 0755). With no network the agent
cannot enroll: it says so in the journal and exits 3, and systemd schedules its restart
(``Restart=on-failure``; exit 2, a refused enrollment, would stop the retries). Needs root
(chroot),
debootstrap, e2fsprogs and qemu-system-x86; without them the test skips (under ``CI=true``
it fails).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.installers.conftest import cached, need, tool
from tests.installers.test_deb_lifecycle import MIRROR, dpkg, release

pytestmark = [pytest.mark.installers, pytest.mark.timeout(1800)]

INCLUDE = (
    "systemd,systemd-sysv,udev,kmod,linux-image-amd64,initramfs-tools,adduser,"
    "init-system-helpers,procps"
)
BOOT_TIMEOUT_S = 600
CHECK_UNIT = """\
[Unit]
Description=DexScope boot check (test only)
After=dexscope-agent.service
Wants=dexscope-agent.service

[Service]
Type=oneshot
ExecStart=/bin/sh /usr/local/sbin/dexscope-boot-check
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""
CHECK_SCRIPT = """\
#!/bin/sh
# the agent as systemd started it: its process, caught while it runs
echo "=== BEGIN DEXSCOPE CHECK"
for _ in $(seq 120); do
  pid=$(systemctl show -p MainPID --value dexscope-agent.service)
  # MainPID is set at the fork, before systemd drops to the unit's user: wait for the exec
  [ "$(readlink "/proc/$pid/exe")" != /opt/dexscope/dexscope-agent ] || break
  sleep 0.5
done
echo "live_pid=$pid"
echo "proc_user=$(ps -o user= -p "$pid")"
grep -E '^(CapEff|NoNewPrivs):' "/proc/$pid/status"
echo "state_mode=$(stat -c %a /var/lib/dexscope) box_mode=$(stat -c %a /var/lib/dexscope-survey)"
# no network: the enrollment fails, the agent exits 3, systemd schedules a restart
for _ in $(seq 120); do
  [ "$(systemctl show -p SubState --value dexscope-agent.service)" = running ] || break
  sleep 1
done
systemctl show dexscope-agent.service -p ActiveState -p SubState -p User -p ExecMainStatus
journalctl -u dexscope-agent.service --no-pager -o cat | tail -n 30
echo "=== END DEXSCOPE CHECK"
systemctl poweroff
"""


def bootable_root_tarball() -> Path:
    """An installed minimal Debian with a kernel and systemd, made once and kept as a tar."""
    debootstrap = tool("debootstrap", "debootstrap")
    suite = release()

    def install(partial: Path, work: Path) -> None:
        done = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={INCLUDE}", suite, str(work), MIRROR],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        need(done.returncode == 0, f"debootstrap could not make {suite}: {done.stderr[-300:]}")
        subprocess.run(
            ["tar", "-C", str(work), "--numeric-owner", "-cf", str(partial), "."], check=True
        )

    key = hashlib.sha256(f"{suite} {INCLUDE}".encode()).hexdigest()[:10]
    return cached(f"bootable-{suite}-{key}.tar", install)


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"{pattern} in {folder}: {found}"
    return found[0]


@pytest.fixture(scope="module")
def console(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Boot the machine with the package installed; what the check wrote to the console."""
    need(os.geteuid() == 0, "the boot test needs root (chroot, files owned by other users)")
    qemu = tool("qemu-system-x86_64", "qemu-system-x86")
    mke2fs = tool("mke2fs", "e2fsprogs")
    tarball = bootable_root_tarball()
    work = tmp_path_factory.mktemp("qemu-boot")
    root = work / "root"
    root.mkdir()
    subprocess.run(
        ["tar", "-C", str(root), "--numeric-owner", "-xf", str(tarball)], check=True, timeout=600
    )
    shutil.copy(deb, root / "tmp" / deb.name)
    dpkg(
        root,
        "-i",
        f"/tmp/{deb.name}",
        env={
            "DEXSCOPE_SERVER_URL": "https://dex.example.invalid",
            "DEXSCOPE_ENROLL_TOKEN": "dxe_boot",
            "DEXSCOPE_TAGS": "site=qemu",
        },
    )
    (root / "tmp" / deb.name).unlink()
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (root / "etc/hostname").write_text("dexscope-boot\n")
    (root / "usr/local/sbin/dexscope-boot-check").write_text(CHECK_SCRIPT)
    unit = root / "etc/systemd/system/dexscope-boot-check.service"
    unit.write_text(CHECK_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")
    # no login prompt on the serial line the check writes to
    (root / "etc/systemd/system/serial-getty@ttyS0.service").symlink_to("/dev/null")

    image = work / "disk.ext4"
    subprocess.run(
        [mke2fs, "-q", "-F", "-t", "ext4", "-L", "dexroot", "-d", str(root), str(image), "3G"],
        check=True,
        timeout=600,
    )
    log = work / "console.log"
    started = time.monotonic()
    done = subprocess.run(
        [
            qemu,
            "-machine",
            "accel=tcg",  # software emulation: the same on every machine
            "-m",
            "1024",
            "-smp",
            "2",
            "-display",
            "none",
            "-no-reboot",
            "-nic",
            "none",
            "-kernel",
            str(_one(root / "boot", "vmlinuz-*")),
            "-initrd",
            str(_one(root / "boot", "initrd.img-*")),
            "-append",
            "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0",
            "-drive",
            f"file={image},format=raw,if=virtio",
            "-serial",
            f"file:{log}",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BOOT_TIMEOUT_S,
        check=False,
    )
    text = log.read_text(errors="replace") if log.exists() else ""
    print(f"booted and powered off in {time.monotonic() - started:.1f} s (software emulation)")
    assert done.returncode == 0, done.stderr[-2000:] + text[-3000:]
    match = re.search(r"=== BEGIN DEXSCOPE CHECK\r?\n(.*?)=== END DEXSCOPE CHECK", text, re.S)
    assert match, "the check never ran; console:\n" + text[-4000:]
    # journal+console prefixes each line with the kernel's time and the writer
    return re.sub(
        r"^\[\s*[\d.]+\] [^:\n]*\[\d+\]: ", "", match.group(1).replace("\r", ""), flags=re.M
    )


def test_systemd_starts_the_agent_at_boot(console: str) -> None:
    values = dict(re.findall(r"^(\w+)=(.*)$", console, re.M))
    assert int(values["live_pid"]) > 0, console
    assert values["User"] == "dexscope" and values["proc_user"].strip() == "dexscope"
    assert "Started dexscope-agent.service" in console


def test_the_units_hardening_applies(console: str) -> None:
    assert re.search(r"^CapEff:\s+0+$", console, re.M), console
    assert re.search(r"^NoNewPrivs:\s+1$", console, re.M), console
    assert "state_mode=700 box_mode=755" in console


def test_without_a_network_it_fails_clearly_and_systemd_retries(console: str) -> None:
    values = dict(re.findall(r"^(\w+)=(.*)$", console, re.M))
    assert "cannot reach the collector at https://dex.example.invalid" in console, console
    assert values["ExecMainStatus"] == "3"  # unreachable: not 2, which would stop retries
    assert (values["ActiveState"], values["SubState"]) == ("activating", "auto-restart")
