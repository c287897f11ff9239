"""Linux parsers on recorded output (golden fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.platform.linux import (
    parse_duration_s,
    parse_psi,
    parse_systemd_analyze,
    read_pressure_totals,
)

FIXTURES = Path(__file__).parent / "fixtures"


def test_durations() -> None:
    assert parse_duration_s("945ms") == pytest.approx(0.945)
    assert parse_duration_s("1min 2.508s") == pytest.approx(62.508)
    assert parse_duration_s("1h 2min 3s") == pytest.approx(3723)
    assert parse_duration_s("250us") == pytest.approx(0.00025)
    with pytest.raises(ValueError):
        parse_duration_s("soon")


def test_systemd_analyze_with_firmware_and_loader() -> None:
    phases = parse_systemd_analyze((FIXTURES / "systemd-analyze-uefi.txt").read_text())
    assert phases == pytest.approx(
        {
            "firmware_s": 6.413,
            "loader_s": 2.306,
            "kernel_s": 1.752,
            "initrd_s": 3.148,
            "userspace_s": 62.508,
            "boot_duration_s": 76.129,
        }
    )


def test_systemd_analyze_vm_without_firmware() -> None:
    phases = parse_systemd_analyze((FIXTURES / "systemd-analyze-vm.txt").read_text())
    assert phases == pytest.approx(
        {"kernel_s": 0.945, "userspace_s": 7.209, "boot_duration_s": 8.154}
    )


def test_systemd_analyze_uefi_laptop_without_initrd() -> None:
    phases = parse_systemd_analyze((FIXTURES / "systemd-analyze-laptop-no-initrd.txt").read_text())
    assert phases == pytest.approx(
        {
            "firmware_s": 3.921,
            "loader_s": 1.106,
            "kernel_s": 2.214,
            "userspace_s": 6.78,
            "boot_duration_s": 14.022,
        }
    )


@pytest.mark.parametrize(
    "fixture", ["systemd-analyze-booting.txt", "systemd-analyze-container.txt"]
)
def test_systemd_analyze_without_figures(fixture: str) -> None:
    assert parse_systemd_analyze((FIXTURES / fixture).read_text()) is None


def test_systemd_analyze_empty() -> None:
    assert parse_systemd_analyze("") is None


def test_psi_files() -> None:
    cpu = parse_psi((FIXTURES / "pressure" / "cpu").read_text())
    assert cpu["some"]["avg10"] == 1.52 and cpu["some"]["total"] == 48213374
    assert cpu["full"]["total"] == 0
    totals = read_pressure_totals(FIXTURES / "pressure")
    assert totals == pytest.approx({"cpu": 48.213374, "memory": 2.210943, "io": 190.337655})


def test_psi_partial_and_missing() -> None:
    assert read_pressure_totals(FIXTURES / "pressure-old") == pytest.approx({"cpu": 1.0})
    assert read_pressure_totals(FIXTURES / "no-such-dir") is None
