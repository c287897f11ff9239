"""The prompt box between the agent service and the survey helper: round trip, atomicity,
hostile answer files, permissions and crash safety."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
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
    box = SurveyBox(tmp_path / "surveys", shared=True)
    box.post(prompt())
    box.answer(answer())
    modes = {d.name: stat.S_IMODE(d.stat().st_mode) for d in (box.root, box.prompts_dir,
             box.answers_dir, box.rejected_dir)}  # fmt: skip
    assert modes == {"surveys": 0o750, "prompts": 0o2750, "answers": 0o3770, "rejected": 0o700}
    assert stat.S_IMODE((box.answers_dir / f"{PID}.json").stat().st_mode) == 0o640


def test_the_helper_side_needs_an_existing_box(tmp_path: Path) -> None:
    with pytest.raises(BoxError, match="no survey box"):
        SurveyBox(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()
    SurveyBox(tmp_path / "surveys")
    assert SurveyBox(tmp_path / "surveys", create=False).pending(NOW) == []
