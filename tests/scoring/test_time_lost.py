"""Minutes lost per device-day, app and persona."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.metrics import DeviceDayInputs
from scoring.personas import persona_arrays
from scoring.time_lost import COMPONENTS, excess_minutes, sum_by, time_lost


def test_excess_minutes() -> None:
    assert excess_minutes([30.0, 90.0, np.nan], 60.0).tolist() == [0.0, 0.5, 0.0]


def test_sum_by_ignores_nan() -> None:
    assert sum_by([0, 1, 1], [1.0, np.nan, 2.0], 3).tolist() == [1.0, 2.0, 0.0]


def test_time_lost_components_apps_and_personas() -> None:
    inputs = DeviceDayInputs(
        n_devices=2,
        n_days=1,
        persona=np.array([0, 4]),  # knowledge worker, executive
        boot_s=np.array([120.0, 30.0]),  # KW T=60 -> 1 min; executive within T=45
        boot_group=np.array([0, 1]),
        logon_s=np.array([45.0]),  # executive T=20 -> 25 s
        logon_group=np.array([1]),
        hang_s=np.array([30.0, np.nan]),  # 30 s; unknown -> default 5 s
        hang_group=np.array([0, 0]),
        hang_app=np.array([2, 0]),
        crash_group=np.array([1]),
        crash_app=np.array([2]),  # executive crash: 10 minutes
        system_crash_group=np.array([0]),  # KW: 15 minutes
    )
    lost = time_lost(inputs, persona_arrays(), n_apps=3)
    col = {c: j for j, c in enumerate(COMPONENTS)}
    assert lost.per_group[0, col["boot"]] == 1.0
    assert lost.per_group[1, col["logon"]] == pytest.approx(25 / 60)
    assert lost.per_group[0, col["hang"]] == pytest.approx(35 / 60)
    assert lost.per_group[1, col["app_crash"]] == 10.0
    assert lost.per_group[0, col["system_crash"]] == 15.0
    np.testing.assert_allclose(lost.total, [1 + 35 / 60 + 15, 25 / 60 + 10])
    np.testing.assert_allclose(lost.per_app, np.array([[5 / 60, 0.0], [0.0, 0.0], [0.5, 10.0]]))
    np.testing.assert_allclose(lost.per_persona, [1 + 35 / 60 + 15, 0, 0, 0, 25 / 60 + 10])
