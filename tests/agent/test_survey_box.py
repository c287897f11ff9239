"""The prompt box between the agent service and the survey helper: round trip, atomicity,
hostile answer files, permissions and crash safety."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.surveys.box import (
    MAX_ANSWER_BYTES,
    REJECT_REASONS,
    BoxError,
    SurveyBox,
    answer_from_json,
    answer_to_json,
    prompt_from_json,
    prompt_to_json,
)
from agent.surveys.model import Answer, Prompt, Question

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
PID = "6f1c2b7e-8a1d-4c3e-9f00-0123456789ab"

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


def prompt(pid: str = PID, qtype: str = "stars", **kw: object) -> Prompt:
    fields: dict[str, object] = {
        "prompt_id": pid,
        "campaign_id": "c-pulse",
        "question": Question(qtype, "How well could you work today?", "What got in your way?"),  # type: ignore[arg-type]
        "trigger": "event",
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=8),
        "anonymous": False,
        "trigger_event_id": "0b6f3c1e-1111-4222-8333-444455556666",
    }
    fields.update(kw)
    return Prompt(**fields)  # type: ignore[arg-type]


def answer(pid: str = PID, **kw: object) -> Answer:
    fields: dict[str, object] = {
        "prompt_id": pid,
        "campaign_id": "c-pulse",
        "outcome": "answered",
        "shown_at": NOW + timedelta(minutes=1),
        "answered_at": NOW + timedelta(minutes=1, seconds=7),
        "value": 4,
        "comment": "VPN kept dropping",
    }
    fields.update(kw)
    return Answer(**fields)  # type: ignore[arg-type]


@pytest.fixture
def box(tmp_path: Path) -> SurveyBox:
    return SurveyBox(tmp_path / "surveys")


def write_answer_file(box: SurveyBox, name: str, content: bytes | str) -> Path:
    path = box.answers_dir / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_round_trip_post_pending_answer_collect(box: SurveyBox) -> None:
    p = prompt()
    box.post(p)
    assert box.open_prompts() == [p]
    assert box.pending(NOW) == [p]
    assert box.pending(p.expires_at) == []  # expired prompts are not shown

    box.answer(answer())
    assert box.pending(NOW) == []  # answered, waiting for the service
    assert box.open_prompts() == [p]  # the prompt file stays until collected

    got: list[tuple[Prompt, Answer]] = []
    assert box.collect_answers(got.extend) == [answer()]
    assert got == [(p, answer())]
    assert box.open_prompts() == []
    assert os.listdir(box.answers_dir) == []
    assert box.collect_answers() == []
    assert box.rejections == {}


def test_times_are_iso_utc_and_no_identity_is_written(box: SurveyBox) -> None:
    paris = datetime(2026, 11, 3, 11, 0, 7, tzinfo=timezone(timedelta(hours=1)))
    box.post(prompt(anonymous=True))
    box.answer(answer(answered_at=paris))
    raw = json.loads((box.answers_dir / f"{PID}.json").read_text())
    assert raw["answered_at"] == "2026-11-03T10:00:07+00:00"
    assert set(raw) == {
        "v", "prompt_id", "campaign_id", "outcome", "shown_at", "answered_at", "value", "comment"
    }  # fmt: skip
    posted = json.loads((box.prompts_dir / f"{PID}.json").read_text())
    assert posted["created_at"] == "2026-11-03T10:00:00+00:00"
    assert prompt_from_json(prompt_to_json(prompt())) == prompt()
    assert answer_from_json(answer_to_json(answer())) == answer()


def test_every_outcome_round_trips(box: SurveyBox) -> None:
    for i, outcome in enumerate(("dismissed", "snoozed", "expired", "opted_out")):
        pid = f"p{i}"
        box.post(prompt(pid))
        box.answer(answer(pid, outcome=outcome, value=None, comment=None))
    assert sorted(a.outcome for a in box.collect_answers()) == [
        "dismissed", "expired", "opted_out", "snoozed"
    ]  # fmt: skip


def test_a_second_answer_to_the_same_prompt_is_refused_and_the_first_stands(
    box: SurveyBox,
) -> None:
    box.post(prompt())
    box.answer(answer(value=2))
    with pytest.raises(FileExistsError):
        box.answer(answer(value=5))
    assert [a.value for a in box.collect_answers()] == [2]
    assert [n for n in os.listdir(box.answers_dir)] == []  # no temporary left behind


def test_half_written_temporary_files_are_ignored(box: SurveyBox) -> None:
    box.post(prompt())
    (box.prompts_dir / ".tmp-0123abcd").write_text('{"prompt_id": "half')
    (box.answers_dir / ".tmp-4567cdef").write_text('{"prompt_id": "6f1c')
    assert box.pending(NOW) == [prompt()]
    assert box.collect_answers() == []
    assert box.rejections == {}
    assert (box.answers_dir / ".tmp-4567cdef").exists()  # a live helper may be writing it


def test_abandoned_temporary_files_are_swept(box: SurveyBox) -> None:
    tmp = box.answers_dir / ".tmp-deadbeef"
    tmp.write_text("{")
    old = NOW.timestamp() - 7200
    os.utime(tmp, (old, old))
    assert box.collect_answers() == []
    assert not tmp.exists()
    assert box.take_rejections() == {"stale_temp": 1}
    assert box.rejections == {}


def _hostile(box: SurveyBox) -> dict[str, str]:
    """Answer files of every kind the service must refuse: file name -> expected reason."""
    box.post(prompt("p-garbage"))
    write_answer_file(box, "p-garbage.json", b"\x00{not json")
    box.post(prompt("p-big"))
    write_answer_file(box, "p-big.json", '{"x": "' + "a" * MAX_ANSWER_BYTES + '"}')
    box.post(prompt("p-scale"))
    box.answer(answer("p-scale", value=6))
    box.post(prompt("p-nps", "nps"))
    box.answer(answer("p-nps", value=-1))
    box.answer(answer("p-never-posted"))
    box.post(prompt("p-twice"))
    box.answer(answer("p-twice", value=3))
    assert [a.value for a in box.collect_answers()] == [3]
    box.post(prompt("p-twice"))  # even if the prompt file came back
    box.answer(answer("p-twice", value=1))
    write_answer_file(box, "..json", answer_to_json(answer("..")))
    write_answer_file(box, "p%2F..%2Fprompts.json", answer_to_json(answer("p/../prompts")))
    box.post(prompt("p-mismatch"))
    write_answer_file(box, "p-mismatch.json", answer_to_json(answer("../prompts/p-mismatch")))
    box.post(prompt("p-extra"))
    write_answer_file(box, "p-extra.json", json.dumps({"prompt_id": "p-extra", "user": "bob"}))
    box.post(prompt("p-comment"))
    box.answer(answer("p-comment", comment="x" * 2001))
    box.post(prompt("p-outcome"))
    write_answer_file(
        box, "p-outcome.json", answer_to_json(answer("p-outcome")).replace("answered", "loved")
    )
    box.post(prompt("p-campaign"))
    box.answer(answer("p-campaign", campaign_id="c-other"))
    return {
        "p-garbage.json": "malformed",
        "p-big.json": "oversized",
        "p-scale.json": "off_scale",
        "p-nps.json": "off_scale",
        "p-never-posted.json": "unknown_prompt",
        "p-twice.json": "duplicate",
        "..json": "bad_name",
        "p%2F..%2Fprompts.json": "bad_name",
        "p-mismatch.json": "name_mismatch",
        "p-extra.json": "invalid",
        "p-comment.json": "invalid",
        "p-outcome.json": "invalid",
        "p-campaign.json": "campaign_mismatch",
    }


def test_hostile_answer_files_are_refused_with_their_reason_and_counted(
    box: SurveyBox, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _hostile(box)
    box.post(prompt("p-good"))
    box.answer(answer("p-good", value=5))
    with caplog.at_level(logging.WARNING, logger="agent.surveys.box"):
        got = box.collect_answers()
    assert [(a.prompt_id, a.value) for a in got] == [("p-good", 5)]  # the valid one survives
    for name, reason in expected.items():
        assert f"refused answer file {name!r} ({reason})" in caplog.text
    counts: dict[str, int] = {}
    for reason in expected.values():
        counts[reason] = counts.get(reason, 0) + 1
    assert box.take_rejections() == counts
    assert set(counts) <= set(REJECT_REASONS)
    assert os.listdir(box.answers_dir) == []  # every refused file was moved aside
    aside = os.listdir(box.rejected_dir)
    assert len(aside) == len(expected)
    assert all(not n.startswith(".") and "/" not in n for n in aside)
    assert box.collect_answers() == []
    assert box.rejections == {}  # nothing is refused twice


def test_links_and_directories_in_the_answers_are_refused(box: SurveyBox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(answer_to_json(answer("p-link")))
    box.post(prompt("p-link"))
    (box.answers_dir / "p-link.json").symlink_to(secret)
    box.post(prompt("p-dir"))
    (box.answers_dir / "p-dir.json").mkdir()
    assert box.collect_answers() == []
    assert box.take_rejections() == {"not_a_file": 2}
    assert secret.exists()  # the link's target is never touched


def test_the_rejected_folder_is_bounded(box: SurveyBox) -> None:
    for i in range(40):
        write_answer_file(box, f"junk{i}.json", "[]")
    box.collect_answers()
    assert box.take_rejections() == {"malformed": 40}
    assert len(os.listdir(box.rejected_dir)) == 32


def test_unsafe_prompt_ids_are_refused_on_both_sides(box: SurveyBox) -> None:
    for bad in ("../escape", "a/b", ".hidden", "", "x" * 200):
        with pytest.raises(ValueError):
            box.post(prompt(bad))
        with pytest.raises(ValueError):
            box.answer(answer(bad))
        with pytest.raises(ValueError):
            box.withdraw(bad)
    assert not (box.root / "escape.json").exists()


def test_bad_prompt_files_are_skipped_by_the_helper(
    box: SurveyBox, caplog: pytest.LogCaptureFixture
) -> None:
    box.post(prompt())
    (box.prompts_dir / "broken.json").write_text("{")
    (box.prompts_dir / "other.json").write_text(prompt_to_json(prompt("p-x")))
    with caplog.at_level(logging.WARNING):
        assert box.pending(NOW) == [prompt()]
        assert box.pending(NOW) == [prompt()]
    assert caplog.text.count("ignoring prompt file 'broken.json'") == 1  # not at every poll


def test_withdraw_removes_a_prompt_unless_an_answer_is_waiting(box: SurveyBox) -> None:
    box.post(prompt("p-a"))
    box.post(prompt("p-b"))
    box.answer(answer("p-b"))
    box.withdraw("p-a")
    box.withdraw("p-b")
    box.withdraw("p-none")
    assert [p.prompt_id for p in box.open_prompts()] == ["p-b"]
    assert [a.prompt_id for a in box.collect_answers()] == ["p-b"]
    assert box.open_prompts() == []


def test_a_crash_before_deleting_loses_nothing(box: SurveyBox) -> None:
    box.post(prompt())
    box.answer(answer())

    def crash(_: list[tuple[Prompt, Answer]]) -> None:
        raise RuntimeError("the service died while spooling")

    with pytest.raises(RuntimeError):
        box.collect_answers(crash)
    again = SurveyBox(box.root)  # the service restarts
    assert again.collect_answers() == [answer()]
    assert again.rejections == {}


def test_a_crash_after_spooling_doubles_nothing(box: SurveyBox, tmp_path: Path) -> None:
    box.post(prompt())
    box.answer(answer())
    answer_file = (box.answers_dir / f"{PID}.json").read_bytes()
    prompt_file = (box.prompts_dir / f"{PID}.json").read_bytes()
    assert box.collect_answers() == [answer()]
    # Simulate a crash after the journal was written but before the files were deleted.
    (box.answers_dir / f"{PID}.json").write_bytes(answer_file)
    (box.prompts_dir / f"{PID}.json").write_bytes(prompt_file)
    again = SurveyBox(box.root)
    assert again.collect_answers() == []
    assert again.rejections == {"duplicate": 1}
    assert again.open_prompts() == []  # the leftover prompt is cleaned up too


def test_a_corrupt_journal_does_not_stop_collection(box: SurveyBox) -> None:
    (box.root / "collected.json").write_text("{")
    box.post(prompt())
    box.answer(answer())
    assert box.collect_answers() == [answer()]
    assert PID in json.loads((box.root / "collected.json").read_text())


@posix_only
def test_same_user_permissions(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        box = SurveyBox(tmp_path / "surveys")
        box.post(prompt())
        box.answer(answer())
    finally:
        os.umask(old)
    for d in (box.root, box.prompts_dir, box.answers_dir, box.rejected_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in (box.prompts_dir / f"{PID}.json", box.answers_dir / f"{PID}.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    box.collect_answers()
    assert stat.S_IMODE((box.root / "collected.json").stat().st_mode) == 0o600


@posix_only
def test_an_existing_box_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "surveys" / "prompts").mkdir(parents=True, mode=0o777)
    os.chmod(tmp_path / "surveys" / "prompts", 0o777)
    box = SurveyBox(tmp_path / "surveys")
    assert stat.S_IMODE(box.prompts_dir.stat().st_mode) == 0o700


@posix_only
def test_shared_mode_permissions(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        box = SurveyBox(tmp_path / "surveys", shared=True)
        box.post(prompt())
        box.answer(answer())
        box.collect_answers()
        box.post(prompt("p-2"))
        box.answer(answer("p-2"))
    finally:
        os.umask(old)
    modes = {d.name: stat.S_IMODE(d.stat().st_mode) for d in (box.root, box.prompts_dir,
             box.answers_dir, box.rejected_dir)}  # fmt: skip
    assert modes == {"surveys": 0o755, "prompts": 0o755, "answers": 0o3733, "rejected": 0o700}
    assert stat.S_IMODE((box.prompts_dir / "p-2.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((box.answers_dir / "p-2.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((box.root / "collected.json").stat().st_mode) == 0o600


@posix_only
def test_a_private_box_made_shared_is_opened_up_and_the_reverse(tmp_path: Path) -> None:
    SurveyBox(tmp_path / "surveys")
    box = SurveyBox(tmp_path / "surveys", shared=True)
    assert stat.S_IMODE(box.answers_dir.stat().st_mode) == 0o3733
    box = SurveyBox(tmp_path / "surveys")
    assert stat.S_IMODE(box.answers_dir.stat().st_mode) == 0o700


def test_the_helper_side_needs_an_existing_box(tmp_path: Path) -> None:
    with pytest.raises(BoxError, match="no survey box"):
        SurveyBox(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()
    SurveyBox(tmp_path / "surveys")
    assert SurveyBox(tmp_path / "surveys", create=False).pending(NOW) == []


# -- across accounts: a service uid, a helper uid, a third user's uid ------------------------
#
# Root ignores file modes, so a box test run as root proves nothing about them: here the
# service side, the helper and a third user each run as their own throw-away unprivileged
# account (useradd, removed afterwards) in a real process. The process starts as root,
# imports what it needs, then drops to the account (setgroups, setgid, setuid) before it
# touches the box: the test's Python may live where only root can read (a pyenv in root's
# home), so ``subprocess.run(user=...)`` could not even start it.

_AS_ACCOUNT = """
import errno, json, os, stat, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
import agent.cli, agent.surveys.box, agent.surveys.dialog, dexscope.cli
from agent.surveys.box import BoxError, SurveyBox
from agent.surveys.model import Answer, Prompt, Question
dexscope.cli.build_parser()  # imports every subcommand module while it still can
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
assert (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) == (uid, uid, gid, gid)
assert os.getgroups() in ([], [gid])
root = Path(sys.argv[3])

def denied(call, *args):
    try:
        call(*args)
    except PermissionError:
        return True
    return False

exec(sys.argv[4])
"""


class Account:
    """A throw-away unprivileged local account (its own user group, no home, no shell)."""

    def __init__(self, name: str) -> None:
        import pwd

        self.name = name
        entry = pwd.getpwnam(name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def run(self, root: Path, code: str, env: dict[str, str] | None = None) -> str:
        """Run ``code`` as this account (``root``: the box); return its stdout."""
        import subprocess
        import textwrap

        result = subprocess.run(
            [sys.executable, "-c", _AS_ACCOUNT, str(self.uid), str(self.gid), str(root),
             textwrap.dedent(code)],
            capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("DEXSCOPE_")},
                 **(env or {})},
        )  # fmt: skip
        assert result.returncode == 0, f"as {self.name}: {result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[Account, Account, Account]]:
    """The service's, a user's (the helper) and another user's account."""
    import secrets
    import shutil
    import subprocess

    if sys.platform == "win32" or not hasattr(os, "geteuid"):
        pytest.skip("POSIX accounts and modes (Windows: the MSI's ACLs)")
    if os.geteuid() != 0:
        pytest.skip("creating throw-away accounts needs root")
    useradd, userdel = shutil.which("useradd"), shutil.which("userdel")
    if useradd is None or userdel is None:
        message = "the cross-account tests need useradd and userdel (Debian passwd)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    tag = secrets.token_hex(3)
    names = [f"dxs{tag}{role}" for role in ("svc", "usr", "oth")]
    made: list[str] = []
    try:
        for name in names:
            subprocess.run(
                [useradd, "--system", "--user-group", "--no-create-home",
                 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            made.append(name)
        service, user, other = (Account(name) for name in names)
        yield service, user, other
    finally:
        for name in made:
            subprocess.run([userdel, name], capture_output=True, timeout=30)


@pytest.fixture
def shared_root(accounts: tuple[Account, Account, Account]) -> Iterator[Path]:
    """An empty folder every account can reach, owned by the service's account (what an
    installer makes: ``install -d -o SERVICE -g SERVICE``); the service creates the box."""
    import shutil
    import tempfile

    service = accounts[0]
    parent = Path(tempfile.mkdtemp(prefix="dexscope-box-"))  # not under pytest's 0700 tmp
    try:
        os.chmod(parent, 0o755)
        root = parent / "survey-box"
        root.mkdir()
        os.chown(root, service.uid, service.gid)
        yield root
    finally:
        shutil.rmtree(parent)


_POST = """
box = SurveyBox(root, shared=True)
now = datetime.now(UTC)
for pid in sys.argv[5:] or ["p-1"]:
    box.post(Prompt(pid, "c-pulse", Question("stars", "How well could you work today?"),
                    "pulse", now, now + timedelta(hours=1)))
"""

_COLLECT = """
box = SurveyBox(root, shared=True)
answers = box.collect_answers()
print(json.dumps({"answers": [[a.prompt_id, a.outcome, a.value, a.comment] for a in answers],
                  "rejections": box.rejections}))
"""

_HELPER_CLI = """
from agent.surveys import dialog
def auto_answer(prompt, *, timeout_s):  # the dialog, answered at once (no display here)
    now = datetime.now(UTC)
    return Answer(prompt.prompt_id, prompt.campaign_id, "answered", now, now, 4, "slow VPN")
dialog.show_dialog = auto_answer
argv = ["agent", "survey-helper", "--once", "--log-level", "info"]
code = dexscope.cli.main(argv + (["--box", str(root)] if "DEXSCOPE_SURVEY_BOX" not in os.environ
                                 else []))
print(json.dumps({"code": code}))
"""


def _posted(service: Account, root: Path, *pids: str) -> None:
    service.run(root, _POST.replace("sys.argv[5:]", repr(list(pids))))


def test_across_accounts_the_helper_answers_and_the_service_collects(
    accounts: tuple[Account, Account, Account], shared_root: Path
) -> None:
    service, user, other = accounts
    root = shared_root
    _posted(service, root, PID, "p-locked")
    answers_dir = root / "answers"
    modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in (root, root / "prompts",
             answers_dir, root / "rejected")}  # fmt: skip
    assert modes == {"survey-box": 0o755, "prompts": 0o755, "answers": 0o3733, "rejected": 0o700}
    for path in (root / "prompts", answers_dir, root / "rejected"):
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (service.uid, service.gid)
    prompt_file = os.stat(root / "prompts" / f"{PID}.json")
    assert stat.S_IMODE(prompt_file.st_mode) == 0o644 and prompt_file.st_uid == service.uid

    # the helper, as the signed-in user, through the real command line
    out = user.run(root, _HELPER_CLI)
    assert json.loads(out.splitlines()[-1]) == {"code": 0}
    mine = os.stat(answers_dir / f"{PID}.json")
    assert stat.S_IMODE(mine.st_mode) == 0o640
    assert (mine.st_uid, mine.st_gid) == (user.uid, service.gid)  # the setgid directory's
    user.run(root, "os.chmod(root / 'answers' / 'p-locked.json', 0o600)")  # keeps the service out

    # another user: reads the questions, sees what is answered, and nothing more
    out = other.run(
        root,
        f"""
        box = SurveyBox(root, shared=True, create=False)
        mine = root / "answers" / "{PID}.json"
        assert box.pending(datetime.now(UTC)) == []  # lexists in a search-only directory
        assert len(box.open_prompts()) == 2  # the prompts are readable
        assert denied(os.listdir, root / "answers")
        assert denied(mine.read_bytes)
        assert denied(os.unlink, mine)
        assert denied(os.rename, mine, root / "answers" / "mine-now.json")
        assert denied(os.listdir, root / "rejected")
        try:
            box.answer(Answer("{PID}", "c-pulse", "answered", None, None, 1))
        except FileExistsError:
            pass
        else:
            raise AssertionError("a second answer was accepted")
        # and plants what it can: a link, a pipe, a folder, an oversized file
        os.symlink("/etc/passwd", root / "answers" / "p-link.json")
        os.mkfifo(root / "answers" / "p-fifo.json")
        os.mkdir(root / "answers" / "p-dir.json")
        (root / "answers" / "p-big.json").write_bytes(b" " * ({MAX_ANSWER_BYTES} + 1))
        print("ok")
    """,
    )
    assert out.strip() == "ok"

    # the service, as its own account: collects the one good answer, refuses the rest
    result = json.loads(service.run(root, _COLLECT))
    assert result["answers"] == [[PID, "answered", 4, "slow VPN"]]
    assert result["rejections"] == {"unreadable": 1, "not_a_file": 3, "oversized": 1}
    assert os.listdir(answers_dir) == []  # the empty folder removed, the rest moved aside
    assert len(os.listdir(root / "rejected")) == 4
    assert not (root / "prompts" / f"{PID}.json").exists()
    journal = os.stat(root / "collected.json")
    assert stat.S_IMODE(journal.st_mode) == 0o600 and journal.st_uid == service.uid
    out = other.run(root, 'print(denied((root / "collected.json").read_bytes))')
    assert out.strip() == "True"
    # a second round finds nothing more (no crash, nothing counted twice)
    assert json.loads(service.run(root, _COLLECT)) == {"answers": [], "rejections": {}}


def test_across_accounts_the_helper_finds_the_box_in_the_environment(
    accounts: tuple[Account, Account, Account], shared_root: Path
) -> None:
    service, user, _ = accounts
    _posted(service, shared_root, PID)
    out = user.run(shared_root, _HELPER_CLI, env={"DEXSCOPE_SURVEY_BOX": str(shared_root)})
    assert json.loads(out.splitlines()[-1]) == {"code": 0}
    result = json.loads(service.run(shared_root, _COLLECT))
    assert result["answers"] == [[PID, "answered", 4, "slow VPN"]]


def test_across_accounts_a_private_box_is_closed_to_the_helper(
    accounts: tuple[Account, Account, Account], shared_root: Path
) -> None:
    """The problem the shared box solves: the service's private box, seen by a user."""
    service, user, _ = accounts
    service.run(shared_root, 'SurveyBox(root / "state" / "surveys")')
    out = user.run(shared_root, """
        import contextlib, io
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = dexscope.cli.main(["agent", "survey-helper", "--once",
                                      "--state-dir", str(root / "state")])
        print(json.dumps({"code": code, "err": err.getvalue()}))
    """)  # fmt: skip
    result = json.loads(out)
    assert result["code"] == 2
    assert result["err"].startswith("error: the survey box at ") and "--box" in result["err"]
    assert result["err"].count("\n") == 1
