"""The Windows MSI: built with wixl (msitools) around a placeholder payload, tables asserted.

``msiinfo export`` reads the built database back: the service (ServiceInstall and
ServiceControl, and its recovery actions), the survey helper's HKLM Run value, the public
properties written to the registry and to the service's environment, the remember-property
pattern (AppSearch / RegLocator read back exactly the values the Registry table writes, and
a type-51 custom action after AppSearch restores each one only when the command line did
not give it), ENROLL_TOKEN hidden from logs (a hidden property, and a log template for
registry writes that leaves values out), and the major upgrade. Then the MSI is
Authenticode-signed with a test certificate made here (openssl) and the signature verified
with osslsigncode. Nothing is installed here: test_msi_wine.py installs, upgrades and
removes it under wine.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.installers.conftest import tool

pytestmark = pytest.mark.installers

Table = list[dict[str, str]]


@pytest.fixture(scope="module")
def msi(packages: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tool("wixl", "wixl")
    tool("msibuild", "msitools")
    built: Path = packages.build_msi(None, tmp_path_factory.mktemp("msi"))
    return built


def table(msi: Path, name: str) -> Table:
    """One table of the MSI as rows of column -> value (``msiinfo export``)."""
    msiinfo = tool("msiinfo", "msitools")
    text = subprocess.run(
        [msiinfo, "export", str(msi), name], capture_output=True, text=True, check=True
    ).stdout
    lines = text.split("\r\n") if "\r\n" in text else text.splitlines()
    columns = lines[0].split("\t")
    return [dict(zip(columns, line.split("\t"), strict=False)) for line in lines[3:] if line]


def by(rows: Table, column: str) -> dict[str, dict[str, str]]:
    return {row[column]: row for row in rows}


def test_the_service_is_installed_started_and_removed(msi: Path) -> None:
    (service,) = table(msi, "ServiceInstall")
    assert service["Name"] == "DexScopeAgent"
    assert service["ServiceType"] == "16"  # SERVICE_WIN32_OWN_PROCESS
    assert service["StartType"] == "2"  # automatic
    assert service["StartName"] == "LocalSystem"
    assert service["Arguments"] == (
        r'agent run --state-dir "[CommonAppDataFolder]DexScope\state"'
        r' --survey-box "[CommonAppDataFolder]DexScope\survey" --service'
    )
    (control,) = table(msi, "ServiceControl")
    # start at install (1), stop at install (2) and uninstall (32), delete at uninstall (128)
    assert int(control["Event"]) == 1 | 2 | 32 | 128 and control["Wait"] == "1"
    files = by(table(msi, "File"), "File")
    components = by(table(msi, "Component"), "Component")
    assert files["AgentExe"]["FileName"].endswith("dexscope-agent.exe")
    assert service["Component_"] == files["AgentExe"]["Component_"]
    # every component is a 64-bit one (msidbComponentAttributes64bit)
    assert all(int(c["Attributes"]) & 256 for c in components.values())
    sequence = by(table(msi, "InstallExecuteSequence"), "Action")
    for action in ("InstallServices", "StartServices", "StopServices", "DeleteServices"):
        assert action in sequence, action


def test_the_service_restarts_after_a_failure(msi: Path, packages: ModuleType) -> None:
    """Recovery actions: restart (action 1) after each delay, also on an error exit code."""
    (recovery,) = table(msi, "MsiServiceConfigFailureActions")
    assert recovery["Name"] == "DexScopeAgent" and recovery["Component_"] == "AgentService"
    assert recovery["Event"] == "1"  # at install (a major upgrade is one)
    assert int(recovery["ResetPeriod"]) == packages.SERVICE_RESET_PERIOD_S
    assert recovery["Actions"].split("[~]") == ["1", "1", "1"]
    delays = [int(d) for d in recovery["DelayActions"].split("[~]")]
    assert delays == list(packages.SERVICE_RESTART_DELAYS_MS)
    # non-crash failures too: the agent stops with 4 when its watchdog wants a restart
    (flag,) = table(msi, "MsiServiceConfig")
    assert (flag["Name"], flag["ConfigType"], flag["Argument"]) == ("DexScopeAgent", "4", "1")
    sequence = by(table(msi, "InstallExecuteSequence"), "Action")
    configure = int(sequence["MsiConfigureServices"]["Sequence"])
    assert int(sequence["InstallServices"]["Sequence"]) < configure
    assert configure < int(sequence["StartServices"]["Sequence"])


def test_the_survey_helper_runs_in_every_session(msi: Path) -> None:
    runs = [
        r
        for r in table(msi, "Registry")
        if r["Key"] == r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run"
    ]
    assert len(runs) == 1 and runs[0]["Root"] == "2"  # HKLM
    # the helper opens the box the service shares with every account, not the state folder
    assert runs[0]["Value"] == (
        r'"[INSTALLDIR]dexscope-agent.exe" agent survey-helper'
        r' --box "[CommonAppDataFolder]DexScope\survey"'
    )


def _aces(sddl: str) -> dict[str, tuple[str, int]]:
    """The DACL's allow entries by trustee: (inheritance flags, access mask)."""
    assert sddl.startswith("D:PAI(")  # protected: nothing inherited from ProgramData
    names = {"FA": 0x1F01FF}
    out = {}
    for ace in re.findall(r"\(([^)]*)\)", sddl):
        kind, flags, rights, _, _, trustee = ace.split(";")
        assert kind == "A"
        out[trustee] = (flags, names[rights] if rights in names else int(rights, 16))
    return out


def test_the_state_folder_is_private_and_the_survey_box_shared(
    msi: Path, packages: ModuleType
) -> None:
    """The folders under ProgramData get protected ACLs: without one, every user could
    read the device token in the state folder (ProgramData gives Users read access)."""
    created = by(table(msi, "CreateFolder"), "Directory_")
    assert set(created) >= set(packages.FOLDER_SDDL)
    locks = {
        lock["LockObject"]: lock["SDDL"]
        for lock in table(msi, "MsiLockPermissionsEx")
        if lock["Table"] == "CreateFolder"
    }
    assert locks == packages.FOLDER_SDDL
    full = (0x1F01FF, "OICI")
    for sddl in locks.values():
        aces = _aces(sddl)
        assert (aces["SY"][1], aces["SY"][0]) == full and (aces["BA"][1], aces["BA"][0]) == full
    assert set(_aces(locks["StateFolder"])) == {"SY", "BA"}
    # users: read the box folder itself (not inherited, so rejected/ and the journal are
    # private), read the prompts, add an answer without listing the folder or deleting
    assert _aces(locks["SurveyFolder"])["BU"] == ("", 0x1200A9)
    assert _aces(locks["SurveyPromptsFolder"])["BU"] == ("OICI", 0x1200A9)
    flags, answers = _aces(locks["SurveyAnswersFolder"])["BU"]
    assert flags == "" and answers & 0x2 and answers & 0x20  # add file, traverse
    assert not answers & (0x1 | 0x40 | 0x10000)  # list, delete child, delete
    assert _aces(locks["SurveyAnswersFolder"])["CO"] == ("OIIO", 0x1F01FF)
    # the survey box's folders are emptied and removed at uninstall (not the state folder)
    removes = table(msi, "RemoveFile")
    emptied = {r["DirProperty"] for r in removes if r["FileName"] == "*"}
    assert emptied == set(packages.SURVEY_BOX_FOLDERS)
    assert all(r["InstallMode"] == "2" for r in removes)


def test_properties_reach_the_service_and_are_remembered(msi: Path) -> None:
    registry = table(msi, "Registry")
    runs_key = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run"
    saved = {r["Name"]: r for r in registry if r["Key"] == r"SOFTWARE\DexScope\Agent"}
    written = {"ServerUrl": "SERVER_URL", "EnrollToken": "ENROLL_TOKEN", "Tags": "TAGS"}
    written["ConfigFile"] = "CONFIG_FILE"
    for name, prop in written.items():
        assert saved[name]["Value"] == f"[{prop}]" and saved[name]["Root"] == "2", name
    (environment,) = [r for r in registry if r["Name"] == "Environment"]
    assert environment["Key"] == r"SYSTEM\CurrentControlSet\Services\DexScopeAgent"
    # "[~]" makes the value a REG_MULTI_SZ, one VAR=value string each
    assert environment["Value"].split("[~]") == [
        "DEXSCOPE_SERVER_URL=[SERVER_URL]",
        "DEXSCOPE_ENROLL_TOKEN=[ENROLL_TOKEN]",
        "DEXSCOPE_TAGS=[TAGS]",
        "DEXSCOPE_AGENT_CONFIG=[CONFIG_FILE]",
    ]

    # remember-property: AppSearch reads SAVED_<P> from where the Registry table writes <P>
    searches = by(table(msi, "AppSearch"), "Property")
    locators = by(table(msi, "RegLocator"), "Signature_")
    actions = by(table(msi, "CustomAction"), "Action")
    for name, prop in written.items():
        locator = locators[searches[f"SAVED_{prop}"]["Signature_"]]
        assert (locator["Root"], locator["Key"], locator["Name"]) == (
            saved[name]["Root"],
            saved[name]["Key"],
            name,
        )
        assert locator["Type"] in {"2", "18"}  # raw value (18: on the 64-bit view)
        restores = [
            a for a in actions.values() if a["Source"] == prop and a["Target"] == f"[SAVED_{prop}]"
        ]
        assert len(restores) == 1 and int(restores[0]["Type"]) & 0x3F == 51, prop
        for sequence_name in ("InstallExecuteSequence", "InstallUISequence"):
            sequence = by(table(msi, sequence_name), "Action")
            step = sequence[restores[0]["Action"]]
            assert int(step["Sequence"]) > int(sequence["AppSearch"]["Sequence"])
            assert step["Condition"] == f"SAVED_{prop} AND NOT {prop}"

    properties = by(table(msi, "Property"), "Property")
    secure = set(properties["SecureCustomProperties"]["Value"].split(";"))
    assert secure >= {"SERVER_URL", "ENROLL_TOKEN", "TAGS", "CONFIG_FILE"}
    hidden = set(properties["MsiHiddenProperties"]["Value"].split(";"))
    assert {"ENROLL_TOKEN", "SAVED_ENROLL_TOKEN"} <= hidden
    token_action = next(a for a in actions.values() if a["Source"] == "ENROLL_TOKEN")
    assert int(token_action["Type"]) & 0x2000  # msidbCustomActionTypeHideTarget
    # the keys that hold the token are SYSTEM's and the Administrators' only, the Run key
    # (read in every user's session) is not locked
    locks = by(
        [lock for lock in table(msi, "MsiLockPermissionsEx") if lock["Table"] == "Registry"],
        "LockObject",
    )
    rows = by(registry, "Registry")
    assert {rows[obj]["Key"] for obj in locks} == {
        r"SOFTWARE\DexScope\Agent",
        r"SYSTEM\CurrentControlSet\Services\DexScopeAgent",
    }
    assert all(r["Registry"] in locks for r in registry if r["Key"] != runs_key)
    assert {(lock["Table"], lock["SDDL"]) for lock in locks.values()} == {
        ("Registry", "D:PAI(A;CI;KA;;;SY)(A;CI;KA;;;BA)")
    }
    # the verbose log's line for each registry value written names it without its value
    # (the token is one of them); the wine test checks the log itself
    (registry_text,) = [r for r in table(msi, "ActionText") if r["Action"] == "WriteRegistryValues"]
    assert registry_text["Template"] == "Key: [1], Name: [2]"
    # no default value: nothing secret is baked into the package
    assert not {"SERVER_URL", "ENROLL_TOKEN", "TAGS"} & set(properties)


def test_major_upgrade(msi: Path, packages: ModuleType) -> None:
    properties = by(table(msi, "Property"), "Property")
    assert properties["UpgradeCode"]["Value"] == "{" + packages.UPGRADE_CODE + "}"
    assert properties["ProductVersion"]["Value"] == packages.msi_version(packages.agent_version())
    upgrades = table(msi, "Upgrade")
    assert {u["ActionProperty"] for u in upgrades} == {
        "WIX_UPGRADE_DETECTED",
        "WIX_DOWNGRADE_DETECTED",
    }
    assert all(u["UpgradeCode"] == properties["UpgradeCode"]["Value"] for u in upgrades)
    sequence = by(table(msi, "InstallExecuteSequence"), "Action")
    assert "FindRelatedProducts" in sequence and "RemoveExistingProducts" in sequence


def test_signed_with_a_test_certificate(msi: Path, tmp_path: Path) -> None:
    openssl = tool("openssl", "openssl")
    osslsigncode = tool("osslsigncode", "osslsigncode")
    key, cert = tmp_path / "test.key", tmp_path / "test.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=DexScope test code signing",
            "-addext",
            "extendedKeyUsage=codeSigning",
            "-addext",
            "keyUsage=digitalSignature",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    signed = tmp_path / "signed.msi"
    subprocess.run(
        [
            osslsigncode,
            "sign",
            "-certs",
            str(cert),
            "-key",
            str(key),
            "-h",
            "sha256",
            "-n",
            "DexScope Agent",
            "-in",
            str(msi),
            "-out",
            str(signed),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    verify = [osslsigncode, "verify", "-CAfile", str(cert), "-in"]
    good = subprocess.run([*verify, str(signed)], capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Signature verification: ok" in good.stdout
    # the unsigned package and a tampered signed one do not verify
    assert subprocess.run([*verify, str(msi)], capture_output=True).returncode != 0
    tampered = tmp_path / "tampered.msi"
    tampered.write_bytes(signed.read_bytes())
    subprocess.run(
        [
            tool("msibuild", "msitools"),
            str(tampered),
            "-q",
            "UPDATE `Property` SET `Value` = 'changed' WHERE `Property` = 'ARPCOMMENTS'",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    bad = subprocess.run([*verify, str(tampered)], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "MISMATCH" in bad.stdout, bad.stdout
