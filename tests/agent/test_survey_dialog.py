"""The survey helper: the real Tk dialog under Xvfb, driven with xdotool, plus the busy check,
the helper loop and the command line.

The X tests need Debian's ``xvfb``, ``xdotool`` and ``x11-apps`` (``xwd``, for the
screenshot) and a Python with tkinter; outside CI they are skipped with the reason when one
is missing, under ``CI=true`` they fail. Each test starts the helper as a real process
(``python -m dexscope agent survey-helper --once``) on its own box, finds the window by its
title, answers with the mouse or the keyboard and reads the answer the helper wrote to the
box. The first one keeps a screenshot in ``test-artifacts/survey-dialog.png``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.surveys import dialog
from agent.surveys.box import SurveyBox
from agent.surveys.dialog import BUSY_STATES, TITLE, run_helper, scale_labels, user_busy
from agent.surveys.model import SCALES, Answer, Prompt, Question
from dexscope.cli import main as dexscope_main

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
TOOLS = {"Xvfb": "xvfb", "xdotool": "xdotool", "xwd": "x11-apps"}


def _x_missing() -> str | None:
    missing = [f"{tool} (Debian {pkg})" for tool, pkg in TOOLS.items() if not shutil.which(tool)]
    if importlib.util.find_spec("tkinter") is None:
        missing.append("tkinter")
    return ", ".join(missing) or None


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private Xvfb server on a free display number (it picks one: -displayfd)."""
    missing = _x_missing()
    if missing:
        message = f"the Tk dialog tests need {missing}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()  # written once the server accepts clients
        if not number.isdigit():
            pytest.fail(f"Xvfb did not start (exit code {xvfb.poll()})")
        yield f":{number}"
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(timeout=5)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait()


class Helper:
    """One survey-helper process on its own box, and xdotool aimed at its window."""

    def __init__(self, tmp_path: Path, display: str, *, shared: bool = False) -> None:
        self.state_dir = tmp_path / "state"
        if shared:  # a system service's box, opened with --box
            self.box = SurveyBox(tmp_path / "survey-box", shared=True)
            self.where = ["--box", str(self.box.root)]
        else:  # the private box of a same-user agent, opened with --state-dir
            self.box = SurveyBox(self.state_dir / "surveys")
            self.where = ["--state-dir", str(self.state_dir)]
        self.geometry = tmp_path / "geometry.json"
        self.env = {**os.environ, "DISPLAY": display}
        self.process: subprocess.Popen[str] | None = None
        self.window = ""

    def start(self, prompt: Prompt, *extra: str) -> None:
        self.box.post(prompt)
        env = {**self.env, dialog.DEBUG_GEOMETRY_ENV: str(self.geometry)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dexscope", "agent", "survey-helper", "--once",
             *self.where, "--log-level", "info", *extra],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.window = self.xdotool("search", "--sync", "--onlyvisible", "--name", TITLE).split()[0]
        deadline = time.monotonic() + 10
        while not self.geometry.exists():
            assert time.monotonic() < deadline, "the dialog never reported its geometry"
            time.sleep(0.02)

    def xdotool(self, *args: str) -> str:
        result = subprocess.run(
            ["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=10
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def click(self, widget: str) -> None:
        """A real pointer click in the middle of one of the dialog's widgets."""
        x, y, w, h = json.loads(self.geometry.read_text())[widget]
        self.xdotool("mousemove", "--sync", str(x + w // 2), str(y + h // 2), "click", "1")

    def keys(self, *keys: str) -> None:
        self.xdotool("windowfocus", "--sync", self.window)
        self.xdotool("key", "--delay", "30", *keys)

    def screenshot(self, path: Path) -> None:
        shot = subprocess.run(
            ["xwd", "-root", "-silent"], env=self.env, capture_output=True, timeout=10
        )
        assert shot.returncode == 0, shot.stderr
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(xwd_to_png(shot.stdout))

    def answer(self) -> Answer:
        assert self.process is not None
        _, err = self.process.communicate(timeout=10)
        assert self.process.returncode == 0, err
        answers = self.box.collect_answers()
        assert self.box.rejections == {}
        assert len(answers) == 1, err
        return answers[0]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@pytest.fixture
def helper(tmp_path: Path, display: str) -> Iterator[Helper]:
    h = Helper(tmp_path, display)
    try:
        yield h
    finally:
        h.stop()


def xwd_to_png(data: bytes) -> bytes:
    """An ``xwd`` dump of a 24-bit TrueColor screen as a PNG (no imaging library needed)."""
    h = struct.unpack(">25I", data[:100])
    header_size, version, pixmap_format, _, width, height = h[:6]
    byte_order, bits_per_pixel, bytes_per_line = h[7], h[11], h[12]
    if (version, pixmap_format, bits_per_pixel, h[14:17]) != (7, 2, 32, (0xFF0000, 0xFF00, 0xFF)):
        raise ValueError("not a 32-bit TrueColor XWD dump")
    offset = header_size + h[19] * 12  # the header, then the colour map
    red, green, blue = (2, 1, 0) if byte_order == 0 else (1, 2, 3)
    rows = bytearray()
    for y in range(height):
        row = data[offset + y * bytes_per_line : offset + y * bytes_per_line + width * 4]
        rgb = bytearray(width * 3)
        rgb[0::3], rgb[1::3], rgb[2::3] = row[red::4], row[green::4], row[blue::4]
        rows += b"\0" + rgb

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


def prompt(qtype: str = "stars", follow_up: str | None = None, **kw: Any) -> Prompt:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "prompt_id": "3d0c8f6a-5b1e-4f7a-9c2d-8e4b6a1f0c33",
        "campaign_id": "c-pulse",
        "question": Question(qtype, "How well could you work today?", follow_up),  # type: ignore[arg-type]
        "trigger": "pulse",
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    fields.update(kw)
    return Prompt(**fields)


# -- the real dialog under Xvfb ----------------------------------------------------------


def test_click_four_stars_type_a_comment_and_send(helper: Helper) -> None:
    helper.start(prompt("stars", "What got in your way?"))
    helper.click("value_4")  # with a follow-up: picks 4, the comment box takes the focus
    helper.xdotool("windowfocus", "--sync", helper.window)
    helper.xdotool("type", "--delay", "5", "VPN kept dropping")
    helper.screenshot(ARTIFACTS / "survey-dialog.png")
    helper.keys("Return")
    got = helper.answer()
    assert (got.outcome, got.value, got.comment) == ("answered", 4, "VPN kept dropping")
    assert got.shown_at is not None and got.answered_at is not None
    assert (got.answered_at - got.shown_at).total_seconds() >= 0
    png = (ARTIFACTS / "survey-dialog.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_one_click_submits_when_there_is_no_follow_up(helper: Helper) -> None:
    helper.start(prompt("emoji"))
    helper.click("value_2")
    got = helper.answer()
    assert (got.outcome, got.value, got.comment) == ("answered", 2, None)


def test_digits_choose_and_enter_submits(helper: Helper) -> None:
    helper.start(prompt("nps"))
    helper.keys("1", "0", "Return")  # NPS 10: 1 then 0
    got = helper.answer()
    assert (got.outcome, got.value) == ("answered", 10)


def test_the_dialog_expires_after_its_timeout(helper: Helper) -> None:
    helper.start(prompt("ces"), "--timeout-s", "0.5")
    got = helper.answer()
    assert (got.outcome, got.value, got.answered_at) == ("expired", None, None)
    assert got.shown_at is not None


def test_escape_dismisses(helper: Helper) -> None:
    helper.start(prompt("stars", "Why?"))
    helper.keys("Escape")
    got = helper.answer()
    assert (got.outcome, got.value, got.comment) == ("dismissed", None, None)
    assert got.answered_at is not None


def test_tab_to_dont_ask_me_this_again(helper: Helper) -> None:
    helper.start(prompt("yes_no"))
    helper.keys("Tab", "Tab", "Tab", "Return")  # Yes -> No -> Later -> Don't ask
    assert helper.answer().outcome == "opted_out"


def test_later_snoozes(helper: Helper) -> None:
    helper.start(prompt("stars", "Why?"))
    helper.click("later")
    assert helper.answer().outcome == "snoozed"


def test_the_helper_opens_a_shared_box_given_with_box(tmp_path: Path, display: str) -> None:
    helper = Helper(tmp_path, display, shared=True)
    try:
        helper.start(prompt("stars"))
        helper.click("value_5")
        got = helper.answer()
    finally:
        helper.stop()
    assert (got.outcome, got.value) == ("answered", 5)


# -- without a display ---------------------------------------------------------------------


def test_scale_labels_match_the_scales() -> None:
    for qtype, (lo, hi) in SCALES.items():
        assert sorted(v for v, _ in scale_labels(qtype)) == list(range(lo, hi + 1))
    assert scale_labels("stars")[3] == (4, "4 \u2605")
    assert scale_labels("yes_no") == [(1, "Yes"), (0, "No")]


def test_user_busy_is_unknown_outside_windows() -> None:
    if sys.platform != "win32":
        assert user_busy() is None


@pytest.mark.parametrize(("state", "busy"), [(2, True), (3, True), (4, True), (7, True),
                                             (1, True), (5, False), (6, False)])  # fmt: skip
def test_user_busy_on_windows_asks_the_shell(
    monkeypatch: pytest.MonkeyPatch, state: int, busy: bool
) -> None:
    import ctypes

    class Shell32:
        def SHQueryUserNotificationState(self, pointer: Any) -> int:
            pointer._obj.value = state
            return 0

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(ctypes, "windll", type("W", (), {"shell32": Shell32()})(), raising=False)
    assert user_busy() is busy
    assert (state in BUSY_STATES) is busy


def test_user_busy_on_windows_without_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delattr(ctypes, "windll", raising=False)
    assert user_busy() is None


def test_importing_the_helper_does_not_load_tk() -> None:
    code = "import sys, agent.surveys.dialog, agent.cli; print('tkinter' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


def test_a_busy_user_leaves_the_prompt_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = SurveyBox(tmp_path)
    p = prompt()
    box.post(p)
    monkeypatch.setattr(dialog, "user_busy", lambda: True)
    monkeypatch.setattr(dialog, "show_dialog", lambda *a, **k: pytest.fail("shown while busy"))
    assert run_helper(tmp_path, once=True, timeout_s=5, poll_s=1) == 0
    assert box.pending(datetime.now(UTC)) == [p]


def test_the_helper_writes_each_answer_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = SurveyBox(tmp_path)
    box.post(prompt(prompt_id="p-1"))
    box.post(prompt(prompt_id="p-2", expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    shown: list[str] = []

    def fake_dialog(p: Prompt, *, timeout_s: float) -> Answer:
        shown.append(p.prompt_id)
        return Answer(p.prompt_id, p.campaign_id, "snoozed", datetime.now(UTC), datetime.now(UTC))

    monkeypatch.setattr(dialog, "show_dialog", fake_dialog)
    assert run_helper(tmp_path, once=True, timeout_s=5, poll_s=1) == 0
    assert run_helper(tmp_path, once=True, timeout_s=5, poll_s=1) == 0  # answered: not again
    assert shown == ["p-1"]  # the expired prompt is never shown
    assert [a.outcome for a in box.collect_answers()] == ["snoozed"]


def test_no_display_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    SurveyBox(tmp_path / "surveys").post(prompt())
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setattr(dialog, "user_busy", lambda: None)
    if sys.platform != "linux" or importlib.util.find_spec("tkinter") is None:
        pytest.skip("needs a Linux tkinter")
    code = dexscope_main(["agent", "survey-helper", "--state-dir", str(tmp_path), "--once"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: cannot open the survey dialog") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--state-dir", "{tmp}/nowhere"], {}, "error: no survey box at "),
        (["--box", "{tmp}/nowhere"], {}, "error: no survey box at "),
        (["--state-dir", "{tmp}", "--timeout-s", "0"], {}, "error: --timeout-s and --poll-s must"),
        (
            [],
            {},
            "error: --box (or DEXSCOPE_SURVEY_BOX) or --state-dir (or DEXSCOPE_STATE_DIR) is "
            "required",
        ),
        (
            ["--box", "{tmp}/surveys", "--state-dir", "{tmp}"],
            {},
            "error: --box and --state-dir cannot be combined",
        ),
        (
            [],
            {"DEXSCOPE_SURVEY_BOX": "{tmp}/surveys", "DEXSCOPE_STATE_DIR": "{tmp}"},
            "error: DEXSCOPE_SURVEY_BOX and DEXSCOPE_STATE_DIR are both set",
        ),
    ],
)
def test_command_line_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.delenv("DEXSCOPE_STATE_DIR", raising=False)
    monkeypatch.delenv("DEXSCOPE_SURVEY_BOX", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp_path))
    SurveyBox(tmp_path / "surveys")
    argv = ["agent", "survey-helper", "--once", *(a.format(tmp=tmp_path) for a in args)]
    assert dexscope_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--box", "{tmp}/box"], {}),
        ([], {"DEXSCOPE_SURVEY_BOX": "{tmp}/box"}),
        (["--box", "{tmp}/box"], {"DEXSCOPE_STATE_DIR": "{tmp}/state"}),  # the flag wins
        (["--box", "{tmp}/box"], {"DEXSCOPE_SURVEY_BOX": "{tmp}/nowhere"}),
        (["--state-dir", "{tmp}/state"], {"DEXSCOPE_SURVEY_BOX": "{tmp}/nowhere"}),
        ([], {"DEXSCOPE_STATE_DIR": "{tmp}/state"}),
    ],
)
def test_the_box_comes_from_box_or_state_dir_and_their_variables(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
) -> None:
    monkeypatch.delenv("DEXSCOPE_STATE_DIR", raising=False)
    monkeypatch.delenv("DEXSCOPE_SURVEY_BOX", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp_path))
    expected = tmp_path / ("state/surveys" if "--state-dir" in args or not args else "box")
    if not args and "DEXSCOPE_SURVEY_BOX" in env:
        expected = tmp_path / "box"
    SurveyBox(expected, shared=expected.name == "box").post(prompt())
    opened: list[Path] = []

    def fake_helper(box_dir: Path, **kw: object) -> int:
        opened.append(box_dir)
        return run_helper(box_dir, once=True, timeout_s=5, poll_s=1)

    monkeypatch.setattr(dialog, "user_busy", lambda: True)  # the prompt stays pending
    monkeypatch.setattr(dialog, "run_helper", fake_helper)
    argv = ["agent", "survey-helper", "--once", *(a.format(tmp=tmp_path) for a in args)]
    assert dexscope_main(argv) == 0
    assert opened == [expected]


def test_an_empty_box_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SurveyBox(tmp_path / "surveys")
    monkeypatch.setenv("DEXSCOPE_STATE_DIR", str(tmp_path))
    assert dexscope_main(["agent", "survey-helper", "--once"]) == 0
