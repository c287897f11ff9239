"""The Windows MSI installed, upgraded and removed for real, by wine's Windows Installer.

The payload's ``dexscope-agent.exe`` is a small stand-in service compiled here with mingw
(``fixtures/standin_service.c``): it talks the service protocol as the agent does and
writes down the arguments the service manager gave it, so the test sees the service
start and stop. In a throw-away wine prefix (64-bit, no display):

1. ``msiexec /i … /qn SERVER_URL=… ENROLL_TOKEN=… TAGS=… /l*v`` installs the files, the
   service (started, with the MSI's arguments), its environment, the survey helper's Run
   value and the remembered properties;
2. a newer MSI installed with ``/qn`` and **no** properties replaces the old product (one
   product left, the service restarted) and keeps the URL, token and tags;
3. ``msiexec /x … /qn`` stops and deletes the service and removes files and registry
   values; the state folder stays while it holds the agent's files, as documented.

The verbose logs never show the token except in the property dump lines, which Windows
Installer masks (``MsiHiddenProperties``) and wine 8 does not: that one difference from
Windows is asserted as such, not hidden. Wine's service manager does not pass a service's
``Environment`` value to the process, so the environment is read back from the registry.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.installers.conftest import need, tool

pytestmark = pytest.mark.installers

FIXTURES = Path(__file__).parent / "fixtures"
SERVER_URL = "https://dex.example.test/"
ENROLL_TOKEN = "dxe_wine-test-token-4f2b9c71"
TAGS = "site=paris,dept=finance"
AGENT_KEY = r"HKLM\SOFTWARE\DexScope\Agent"
SERVICE_KEY = r"HKLM\SYSTEM\CurrentControlSet\Services\DexScopeAgent"
RUN_KEY = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run"
UNINSTALL_KEY = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall"
# one value in `reg query` output: name, type, data
VALUE_LINE = re.compile(r"^\s{4}(\S+)\s{4}REG_\w+(?:\s{4}(.*))?$")
# the property dump of a verbose log: Windows writes ********** for hidden properties
DUMP_LINE = re.compile(r"^Property\([SC]\): (SAVED_)?ENROLL_TOKEN = ")


@dataclass
class Wine:
    """A wine prefix of its own and the commands run in it."""

    prefix: Path
    wine: str
    wineserver: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
        env.update(
            WINEPREFIX=str(self.prefix),
            WINEDEBUG="-all",
            # no Mono or Gecko download prompts: nothing here needs them
            WINEDLLOVERRIDES="mscoree,mshtml=",
        )
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``wine ARGS`` in the prefix."""
        return self._run([self.wine, *args], check=check)

    def server(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``wineserver ARGS`` for the prefix (``--wait``: until it has nothing left to run)."""
        return self._run([self.wineserver, *args], check=check)

    def _run(self, argv: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"{' '.join(argv)}: {done.returncode}\n{done.stderr}"
        return done

    def msiexec(self, *args: str, log: Path) -> str:
        """Run ``msiexec ARGS /l*v LOG`` silently; the log's text."""
        self.run("msiexec", *args, "/l*v", self.windows_path(log))
        return log.read_text(encoding="utf-8", errors="replace")

    def windows_path(self, path: Path) -> str:
        """``path`` as wine sees it (the Unix root is drive Z:)."""
        return "Z:" + str(path).replace("/", "\\")

    def drive_c(self, *parts: str) -> Path:
        return self.prefix.joinpath("drive_c", *parts)

    def registry(self, key: str) -> dict[str, str] | None:
        """The values of ``key`` (name -> data, as ``reg query`` prints them), or None."""
        done = self.run("reg", "query", key, check=False)
        if done.returncode != 0:
            return None
        values: dict[str, str] = {}
        for line in done.stdout.splitlines():
            if match := VALUE_LINE.match(line):
                values[match.group(1)] = match.group(2) or ""
        return values

    def service_state(self) -> str | None:
        """``sc query DexScopeAgent``'s STATE (``RUNNING``…), or None without the service."""
        done = self.run("sc", "query", "DexScopeAgent", check=False)
        match = re.search(r"STATE\s*:\s*\d+\s+(\w+)", done.stdout)
        return match.group(1) if match else None

    def products(self) -> dict[str, str]:
        """Installed products named DexScope Agent: uninstall key -> DisplayVersion."""
        done = self.run("reg", "query", UNINSTALL_KEY, "/s", check=False)
        found: dict[str, str] = {}
        key, fields = "", dict[str, str]()
        for line in [*done.stdout.splitlines(), "HKEY_END"]:
            if line.startswith("HKEY_"):
                if fields.get("DisplayName") == "DexScope Agent":
                    found[key] = fields.get("DisplayVersion", "")
                key, fields = line.strip(), {}
            elif match := VALUE_LINE.match(line):
                fields[match.group(1)] = match.group(2) or ""
        return found


@dataclass
class Installed:
    """The prefix after the first install, and what the test needs of it."""

    wine: Wine
    version: str
    newer_version: str
    newer: Path
    logs: Path
    install_log: str


def _standin(out: Path) -> Path:
    gcc = tool("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64")
    exe = out / "dexscope-agent.exe"
    subprocess.run(
        [
            gcc,
            "-municode",
            "-O2",
            "-s",
            "-Wall",
            "-Werror",
            "-o",
            str(exe),
            str(FIXTURES / "standin_service.c"),
            "-ladvapi32",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return exe


def _newer(version: str) -> str:
    major, minor, build = (int(n) for n in version.split("."))
    return f"{major}.{minor}.{build + 1}"


@pytest.fixture(scope="module")
def installed(
    packages: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    """Two MSIs around the stand-in service, a fresh prefix, and the first install done."""
    tool("wixl", "wixl")
    tool("msibuild", "msitools")
    need(Path("/usr/lib/wine/wine64").exists(), "wine has no 64-bit loader (wine64)")
    wine = Wine(
        tmp_path_factory.mktemp("wine") / "prefix",
        tool("wine", "wine, wine64"),
        tool("wineserver", "wine"),
    )
    base = tmp_path_factory.mktemp("msi-wine")
    payload = packages.placeholder_payload(base / "payload")
    shutil.copyfile(_standin(base), payload / "dexscope-agent.exe")
    version = packages.msi_version(packages.agent_version())
    first: Path = packages.build_msi(payload, base / "first", version=version)
    newer: Path = packages.build_msi(payload, base / "newer", version=_newer(version))
    logs = base / "logs"
    logs.mkdir()
    wine.run("wineboot", "--init")
    wine.server("--wait")  # the prefix is made (a first msiexec beside it may fail)
    try:
        log = wine.msiexec(
            "/i",
            wine.windows_path(first),
            "/qn",
            f"SERVER_URL={SERVER_URL}",
            f"ENROLL_TOKEN={ENROLL_TOKEN}",
            f"TAGS={TAGS}",
            log=logs / "install.log",
        )
        yield Installed(wine, version, _newer(version), newer, logs, log)
    finally:
        wine.server("--kill", check=False)


def _marker(wine: Wine) -> Path:
    return wine.drive_c("ProgramData", "DexScope", "state", "standin-service.txt")


def _assert_token_only_in_the_property_dump(log: str) -> None:
    leaks = [line for line in log.splitlines() if ENROLL_TOKEN in line]
    assert all(DUMP_LINE.match(line) for line in leaks), leaks
    # …which Windows Installer masks, because the package lists them as hidden
    assert "MsiHiddenProperties = ENROLL_TOKEN;SAVED_ENROLL_TOKEN" in log


def test_a_silent_install_sets_up_and_starts_the_service(installed: Installed) -> None:
    wine = installed.wine
    agent_dir = wine.drive_c("Program Files", "DexScope", "Agent")
    assert (agent_dir / "dexscope-agent.exe").is_file()
    assert (agent_dir / "agent.toml.example").is_file()
    assert (agent_dir / "_internal" / "README.txt").is_file()
    assert wine.service_state() == "RUNNING"
    # the service manager started it with the MSI's arguments: the protocol flag, the state
    lines = _marker(wine).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "running"
    assert [line.removeprefix("arg=") for line in lines if line.startswith("arg=")] == [
        "agent",
        "run",
        "--state-dir",
        r"C:\ProgramData\DexScope\state",
        "--survey-box",
        r"C:\ProgramData\DexScope\survey",
        "--service",
    ]
    saved = wine.registry(AGENT_KEY)
    assert saved is not None
    assert saved["ServerUrl"] == SERVER_URL
    assert saved["EnrollToken"] == ENROLL_TOKEN
    assert saved["Tags"] == TAGS
    assert saved["InstallDir"] == "C:\\Program Files\\DexScope\\Agent\\"
    service = wine.registry(SERVICE_KEY)
    assert service is not None
    assert service["Environment"].split("\\0") == [
        f"DEXSCOPE_SERVER_URL={SERVER_URL}",
        f"DEXSCOPE_ENROLL_TOKEN={ENROLL_TOKEN}",
        f"DEXSCOPE_TAGS={TAGS}",
        "DEXSCOPE_AGENT_CONFIG=",
    ]
    run = wine.registry(RUN_KEY)
    assert run is not None
    assert run["DexScopeSurveyHelper"] == (
        '"C:\\Program Files\\DexScope\\Agent\\dexscope-agent.exe" agent survey-helper'
        ' --box "C:\\ProgramData\\DexScope\\survey"'
    )
    survey = wine.drive_c("ProgramData", "DexScope", "survey")
    assert sorted(p.name for p in survey.iterdir()) == ["answers", "prompts", "rejected"]
    assert list(wine.products().values()) == [installed.version]


def test_the_install_log_keeps_the_token_out(installed: Installed) -> None:
    log = installed.install_log
    # the registry writes are logged by name only (the package's ActionText template)
    assert r"Key: HKEY_LOCAL_MACHINE\SOFTWARE\DexScope\Agent, Name: EnrollToken" in log
    _assert_token_only_in_the_property_dump(log)


def test_an_upgrade_without_properties_keeps_them_and_uninstall_removes_all(
    installed: Installed,
) -> None:
    wine = installed.wine
    _marker(wine).unlink()
    upgrade_log = wine.msiexec(
        "/i", wine.windows_path(installed.newer), "/qn", log=installed.logs / "upgrade.log"
    )
    # one product left, the newer one; the service was restarted on the new files
    assert list(wine.products().values()) == [installed.newer_version]
    assert wine.service_state() == "RUNNING"
    assert _marker(wine).read_text(encoding="utf-8").startswith("running\n")
    saved = wine.registry(AGENT_KEY)
    assert saved is not None
    assert (saved["ServerUrl"], saved["EnrollToken"], saved["Tags"]) == (
        SERVER_URL,
        ENROLL_TOKEN,
        TAGS,
    )
    service = wine.registry(SERVICE_KEY)
    assert service is not None
    assert f"DEXSCOPE_ENROLL_TOKEN={ENROLL_TOKEN}" in service["Environment"].split("\\0")
    _assert_token_only_in_the_property_dump(upgrade_log)

    # The survey box is left empty here: wine's RemoveFiles passes "dir\\*" to DeleteFileW
    # without expanding it, so the box's wildcard RemoveFile rows (which empty it on
    # Windows) are checked in the tables only (test_msi.py).
    survey = wine.drive_c("ProgramData", "DexScope", "survey")

    uninstall_log = wine.msiexec(
        "/x", wine.windows_path(installed.newer), "/qn", log=installed.logs / "uninstall.log"
    )
    assert wine.service_state() is None
    # stopped through the service protocol before it was deleted
    assert _marker(wine).read_text(encoding="utf-8").splitlines()[-1] == "stopped"
    assert not wine.drive_c("Program Files", "DexScope").exists()
    assert wine.registry(AGENT_KEY) is None
    assert wine.registry(SERVICE_KEY) is None
    run = wine.registry(RUN_KEY) or {}
    assert "DexScopeSurveyHelper" not in run
    assert wine.products() == {}
    # the state folder stays while the agent's files are in it (here the stand-in's)
    state = wine.drive_c("ProgramData", "DexScope", "state")
    assert sorted(p.name for p in state.iterdir()) == ["standin-service.txt"]
    # the survey box's four folders go
    assert not survey.exists()
    _assert_token_only_in_the_property_dump(uninstall_log)
