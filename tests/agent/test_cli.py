"""``dexscope agent run|status`` as real processes (no collector: refused connections only)."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import register
from agent.config import DEFAULTS, ConfigLayers
from agent.errors import AgentConfigError
from agent.main import STATUS_KEYS, agent_status
from agent.spool import read_stats
from agent.state import Identity, save_identity
from tests.agent.test_enroll import closed_port

REPO = Path(__file__).resolve().parents[2]


def dexscope(
    *args: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXSCOPE_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "dexscope", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def test_register_adds_run_and_status() -> None:
    parser = argparse.ArgumentParser(prog="dexscope agent")
    register(parser.add_subparsers(dest="agent_command", required=True))
    args = parser.parse_args(
        ["run", "--server", "https://d.example", "--tag", "a=b", "--tag", "c=d", "--once"]
    )
    assert args.once and args.tag == ["a=b", "c=d"] and callable(args.func)
    args = parser.parse_args(["status", "--state-dir", "/tmp/x", "--json"])
    assert args.json and args.state_dir == Path("/tmp/x") and callable(args.func)


def test_status_without_identity_is_a_clear_error(tmp_path: Path) -> None:
    result = dexscope("agent", "status", "--state-dir", str(tmp_path), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and "holds no enrolled agent" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_first_enrollment_unreachable_exits_3(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = dexscope(
        "agent", "run", "--server", url, "--enroll-token", "et_x", "--state-dir", str(tmp_path),
        "--once",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert f"error: cannot reach the collector at {url}" in result.stderr
    assert "et_x" not in result.stderr
    assert not (tmp_path / "identity.json").exists()


def test_once_unreachable_after_enrollment_keeps_the_data(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    identity = Identity("0b6c1f43-5a53-4e8e-9a51-4a2f8c3f1d10", "dt_secret", url, "2026-11-22")
    save_identity(tmp_path, identity)
    result = dexscope("agent", "run", "--state-dir", str(tmp_path), "--once")
    assert result.returncode == 0, result.stderr
    assert "warning: upload failed" in result.stderr and "stays in the spool" in result.stderr
    assert "dt_secret" not in result.stderr
    stats = read_stats(tmp_path / "spool.db")
    assert stats.events >= 2 and stats.events == stats.events_appended_total
    assert stats.counters["upload_failures_total"] == 1

    status = agent_status(tmp_path)
    assert tuple(status) == STATUS_KEYS
    assert status["device_id"] == identity.device_id and status["server"] == url
    assert status["spool_events"] == stats.events and status["last_upload_at"] is None
    assert "cannot reach" in status["last_error"]

    shown = dexscope("agent", "status", "--state-dir", str(tmp_path), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == status


@pytest.mark.parametrize("how", ["flag", "env"])
def test_run_with_a_shared_survey_box(tmp_path: Path, how: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    state, shared = tmp_path / "state", tmp_path / "survey-box"
    save_identity(
        state, Identity("0b6c1f43-5a53-4e8e-9a51-4a2f8c3f1d10", "dt_x", url, "2026-11-22")
    )
    args = ["agent", "run", "--state-dir", str(state), "--once"]
    if how == "flag":
        result = dexscope(*args, "--survey-box", str(shared))
    else:
        result = dexscope(*args, env_extra={"DEXSCOPE_SURVEY_BOX": str(shared)})
    assert result.returncode == 0, result.stderr
    assert not (state / "surveys").exists()  # not the private box
    if sys.platform != "win32":
        modes = {d: stat.S_IMODE((shared / d).stat().st_mode) for d in ("prompts", "answers")}
        assert modes == {"prompts": 0o755, "answers": 0o3733}
    status = agent_status(state)
    assert status["collection"]["survey_box"] == str(shared.resolve())
    assert status["collection"]["survey_box_shared"] is True
    shown = dexscope("agent", "status", "--state-dir", str(state))
    assert f"{shared.resolve()} (shared)" in shown.stdout


def test_survey_box_setting_flag_env_and_file(tmp_path: Path) -> None:
    def build(
        flags: dict[str, str | None], environ: dict[str, str], file: Path | None = None
    ) -> Path | None:
        layers = ConfigLayers.load(
            flags={"state_dir": str(tmp_path / "state"), **flags},
            config_file=file,
            environ=environ,
            known_samplers=frozenset(DEFAULTS["samplers"]),
        )
        return layers.build().survey_box

    assert build({}, {}) is None
    assert build({}, {"DEXSCOPE_SURVEY_BOX": str(tmp_path / "env")}) == tmp_path / "env"
    flag = {"survey_box": str(tmp_path / "flag")}
    assert build(flag, {"DEXSCOPE_SURVEY_BOX": str(tmp_path / "env")}) == tmp_path / "flag"
    toml = tmp_path / "agent.toml"
    toml.write_text(f"survey_box = {json.dumps(str(tmp_path / 'file'))}\n")
    assert build({}, {}, toml) == tmp_path / "file"
    assert build({}, {"DEXSCOPE_SURVEY_BOX": str(tmp_path / "env")}, toml) == tmp_path / "env"
    with pytest.raises(AgentConfigError, match="survey_box must be outside state_dir"):
        build({"survey_box": str(tmp_path / "state" / "surveys")}, {})


def test_register_adds_the_survey_box_options() -> None:
    parser = argparse.ArgumentParser(prog="dexscope agent")
    register(parser.add_subparsers(dest="agent_command", required=True))
    args = parser.parse_args(["run", "--survey-box", "/srv/box"])
    assert args.survey_box == Path("/srv/box")
    args = parser.parse_args(["survey-helper", "--box", "/srv/box"])
    assert args.box == Path("/srv/box") and args.state_dir is None
