"""End to end, a survey: a campaign created through the API reaches a real agent, a real
dialog shows on a virtual screen, a click lands as a scored answer at the collector — after
waiting in the agent's spool while the collector was down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from agent.surveys import dialog
from agent.surveys.box import SurveyBox
from tests.agent.linux_env import crash_with_sigsegv, kmsg_readable
from tests.agent.test_survey_dialog import ARTIFACTS, display, xwd_to_png
from tests.support import REPO, CollectorProcess, create_tenant, run_cli

pytestmark = pytest.mark.e2e
__all__ = ["display"]  # the Xvfb fixture, shared with the dialog tests

ANY_TIME = """
[samplers.survey.fatigue]
quiet_hours = ["00:00", "00:00"]
working_days = [0, 1, 2, 3, 4, 5, 6]
"""


def test_campaign_reaches_the_dialog_and_the_click_is_scored(
    database_url: str, tmp_path: Path, display: str
) -> None:
    if not kmsg_readable():
        pytest.skip("the triggering crash is read from the kernel log here, which needs root")
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    state = tmp_path / "agent"
    config = tmp_path / "agent.toml"
    config.write_text(ANY_TIME)  # the test may run at night or on a Sunday
    api = {"Authorization": f"Bearer {tenant.api_key}"}
    campaign = f"after-crash-{uuid.uuid4().hex[:6]}"
    with CollectorProcess(database_url, tmp_path / "collector.log") as collector:
        created = httpx.post(
            f"{collector.url}/api/v1/campaigns",
            headers=api,
            json={
                "id": campaign,
                "name": "After a crash",
                "question": {"type": "stars", "text": "How well could you work after that crash?"},
                "trigger": {"kind": "event", "event_types": ["app_crash"], "delay_s": 0},
                "starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                "min_responses": 1,  # this test reads one click's value back
            },
        )
        assert created.status_code == 201, created.text
        crash_with_sigsegv(f"dx{uuid.uuid4().hex[:10]}")
        agent = [
            "agent", "run", "--server", collector.url, "--enroll-token",
            tenant.enrollment_token, "--state-dir", str(state), "--config", str(config), "--once",
        ]  # fmt: skip
        run_cli(*agent)  # enrolls, gets the campaign, sees the crash, posts the prompt
        box = SurveyBox(state / "surveys")
        prompts = box.open_prompts()
        assert [(p.campaign_id, p.trigger) for p in prompts] == [(campaign, "event")]
        assert prompts[0].trigger_event_id is not None

        geometry = tmp_path / "geometry.json"
        env = {**os.environ, "DISPLAY": display, dialog.DEBUG_GEOMETRY_ENV: str(geometry)}
        helper = subprocess.Popen(
            [sys.executable, "-m", "dexscope", "agent", "survey-helper", "--once",
             "--state-dir", str(state)],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            subprocess.run(
                ["xdotool", "search", "--sync", "--onlyvisible", "--name", dialog.TITLE],
                env=env, check=True, capture_output=True, timeout=20,
            )  # fmt: skip
            deadline = time.monotonic() + 10
            while not geometry.exists():
                assert time.monotonic() < deadline, "the dialog never reported its geometry"
                time.sleep(0.05)
            shot = subprocess.run(["xwd", "-root", "-silent"], env=env, capture_output=True)
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "survey-e2e.png").write_bytes(xwd_to_png(shot.stdout))
            x, y, w, h = json.loads(geometry.read_text())["value_4"]
            subprocess.run(
                ["xdotool", "mousemove", "--sync", str(x + w // 2), str(y + h // 2), "click", "1"],
                env=env, check=True, capture_output=True, timeout=10,
            )  # fmt: skip
            _, err = helper.communicate(timeout=20)
            assert helper.returncode == 0, err
        finally:
            if helper.poll() is None:
                helper.kill()
                helper.communicate()

        # Offline: the collector is down when the agent collects the answer; it waits in the
        # spool and arrives, once, when the collector is back.
        collector.stop()
        run_cli(*agent)  # collects the answer; the upload fails (exit 0, data kept)
        status = json.loads(run_cli("agent", "status", "--state-dir", str(state), "--json").stdout)
        assert status["spool_events"] >= 1 and status["last_error"] is not None
        assert box.open_prompts() == []  # the box let go: the answer is in the spool
        collector.start()
        run_cli(*agent)  # uploads it
        run_cli(*agent)  # once more: the answer is not sent twice
        results = httpx.get(
            f"{collector.url}/api/v1/campaigns/{campaign}/results", headers=api
        ).json()
        assert results["counts"]["answered"] == 1, results
        assert results["prompts"] == 1
        assert results["score"]["n"] == 1 and results["score"]["mean"] == 75.0  # 4 of 1..5
        assert results["by_trigger"]["event"]["counts"]["answered"] == 1
        assert box.open_prompts() == []
