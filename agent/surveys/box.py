"""The prompt box: a directory of small JSON files between the agent service and the helper.

The agent service (the sampling service, possibly a system account) and the survey helper
(``dexscope agent survey-helper``, in the user's session) share nothing but this directory:
no socket, no network port, no elevated rights. Layout under the box ``root``::

    prompts/<prompt_id>.json    written by the service (post), read by the helper
    answers/<prompt_id>.json    written by the helper (answer), read and deleted by the service
    rejected/                   answer files the service refused, kept aside (at most 32)
    collected.json              the prompt ids already collected (service only; 30 days)

Every file is written to a temporary name starting with ``.tmp-`` in the same directory and
then renamed into place, so a reader sees either nothing or a whole file; readers ignore the
temporary names (stale ones, older than an hour, are removed by the service).

**Handshake.** The service posts a prompt; the helper lists it as pending while it is
unexpired and has no answer file; the helper writes exactly one answer file per prompt (an
exclusive hard link: a second answer for the same prompt is refused with
:class:`FileExistsError`); the prompt file stays until the service collects. The service's
:meth:`SurveyBox.collect_answers` then, in this order: reads and validates every answer,
hands the valid ones to ``sink`` (the caller spools them), records their prompt ids in
``collected.json``, and only then deletes the answer and prompt files. A crash

- before or inside ``sink`` leaves every file in place: the next collection returns the same
  answers (nothing is lost);
- after ``sink`` and before the journal is written returns the answer once more next time:
  the ``survey_response`` carries the prompt id and the collector keeps one response per
  prompt id, and the planner's ``record`` is idempotent (nothing is doubled downstream);
- after the journal is written: the leftover answer is refused as ``duplicate`` and its
  files are removed (nothing is doubled).

An answer whose prompt was never posted, was already collected, or is not owned by the
service's account is refused. :meth:`SurveyBox.withdraw` leaves a prompt in place while an
answer for it is waiting, so an answer written just before the planner expired the prompt
is still collected.

**Validation** (service side): an answer file is refused, moved aside to ``rejected/`` and
counted by reason (:data:`REJECT_REASONS`) when its name is not ``<prompt_id>.json``, it is
not a regular file (a link, a directory, a pipe), it is larger than 16 KiB, it is not a
JSON object with exactly the known keys and types, its prompt id differs from its name, its
value is off the question's scale (:data:`~agent.surveys.model.SCALES`) or missing for an
answered prompt, its comment is longer than 2000 characters, its outcome is unknown, or its
prompt is unknown or already collected. A refused file is logged with its reason; nothing in
an answer file can crash the service or make it lose a valid answer.

**Permissions.** Same-user deployment (the default: the service and the helper run as the
same account, as in the demo and the tests; the box is ``STATE_DIR/surveys``): every
directory 0700, every file 0600. ``shared=True`` is for a system service with per-user
helpers (``agent run --survey-box DIR``): the box is outside the service's private state
folder and no group is needed. On POSIX, ``root`` 0755; ``prompts`` 0755 with prompt files
0644 (any local account may read the questions: they hold no personal data); ``answers``
3733: setgid, so an answer file takes the directory's group (the service's), sticky, so a
user can neither remove nor rename another user's answer, and write and search but no read
for the others, so a user can add an answer file (and check that one exists, which is all
:meth:`SurveyBox.pending` needs) but cannot list the others'. The helper writes answer files
0640: the service reads them through their group, other users cannot. ``rejected`` 0700 and
``collected.json`` 0600 in both modes (the service's own). The service's group must hold no
interactive user (a system account's own group does). The service still refuses a hostile
answer file (a link, a pipe, a directory, an oversized one, one whose prompt it did not
post) and one it cannot read (a user made it 0600: ``unreadable``). On Windows modes mean
nothing: the installer sets the ACLs (users may read the prompts and add answers, not list
or read the others' answers) and the box only checks that it can do its part.

Datetimes are written as ISO 8601 in UTC.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

from agent.surveys.model import OUTCOMES, SCALES, Answer, Prompt, Question

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_COMMENT_CHARS",
    "REJECT_REASONS",
    "BoxError",
    "SurveyBox",
    "answer_from_json",
    "answer_to_json",
    "prompt_from_json",
    "prompt_to_json",
]

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES: Final = 16 * 1024
"""Answer (and prompt) files larger than this are refused unread."""
MAX_COMMENT_CHARS: Final = 2000
"""The longest comment an answer may carry."""
REJECT_REASONS: Final = (
    "bad_name",
    "not_a_file",
    "oversized",
    "unreadable",
    "malformed",
    "invalid",
    "name_mismatch",
    "unknown_prompt",
    "duplicate",
    "campaign_mismatch",
    "off_scale",
    "stale_temp",
)
"""Why the service refused an answer file (``stale_temp``: a helper's abandoned temporary)."""

_MODE_WARNED: set[str] = set()
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_TEMP_PREFIX = ".tmp-"
_STALE_TEMP_S = 3600.0
_REJECTED_KEEP = 32
_JOURNAL_DAYS = 30
_JOURNAL_MAX = 5000
_ANSWER_KEYS = frozenset(
    {"v", "prompt_id", "campaign_id", "outcome", "shown_at", "answered_at", "value", "comment"}
)
_PROMPT_KEYS = frozenset(
    {"v", "prompt_id", "campaign_id", "question", "trigger", "created_at", "expires_at",
     "anonymous", "trigger_event_id"}
)  # fmt: skip


class BoxError(Exception):
    """The box is missing or unusable (a one-line message for the user)."""


class _Invalid(ValueError):
    """An answer or prompt document is refused; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _check_id(prompt_id: str) -> str:
    if not isinstance(prompt_id, str) or not _ID.fullmatch(prompt_id):
        raise ValueError(f"prompt id {prompt_id!r} is not a safe file name")
    return prompt_id


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _time(raw: Mapping[str, Any], key: str, required: bool) -> datetime | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise _Invalid("invalid", f"{key}: must be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Invalid("invalid", f"{key}: must be an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise _Invalid("invalid", f"{key}: must have a UTC offset")
    return parsed.astimezone(UTC)


def _str(raw: Mapping[str, Any], key: str, limit: int, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _Invalid("invalid", f"{key}: must be a non-empty string of at most {limit} chars")
    return value


def prompt_to_json(prompt: Prompt) -> str:
    """The prompt file's text (version 1; times in UTC)."""
    q = prompt.question
    return json.dumps(
        {
            "v": 1,
            "prompt_id": prompt.prompt_id,
            "campaign_id": prompt.campaign_id,
            "question": {"type": q.type, "text": q.text, "follow_up": q.follow_up},
            "trigger": prompt.trigger,
            "created_at": _iso(prompt.created_at),
            "expires_at": _iso(prompt.expires_at),
            "anonymous": prompt.anonymous,
            "trigger_event_id": prompt.trigger_event_id,
        },
        ensure_ascii=False,
    )


def prompt_from_json(text: str | bytes) -> Prompt:
    """Parse and validate a prompt file; raises ValueError with the field at fault."""
    raw = _load(text)
    unknown = set(raw) - _PROMPT_KEYS
    if unknown:
        raise _Invalid("invalid", f"{sorted(unknown)[0]}: unknown key")
    q = raw.get("question")
    if not isinstance(q, dict) or set(q) - {"type", "text", "follow_up"}:
        raise _Invalid("invalid", "question: must be an object with type, text, follow_up")
    if q.get("type") not in SCALES:
        raise _Invalid("invalid", "question.type: unknown")
    if raw.get("trigger") not in ("pulse", "event", "control"):
        raise _Invalid("invalid", "trigger: must be pulse, event or control")
    anonymous = raw.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise _Invalid("invalid", "anonymous: must be true or false")
    prompt_id = _str(raw, "prompt_id", 128)
    if not _ID.fullmatch(prompt_id or ""):
        raise _Invalid("bad_name", "prompt_id: not a safe file name")
    created_at = _time(raw, "created_at", True)
    expires_at = _time(raw, "expires_at", True)
    assert created_at is not None and expires_at is not None
    return Prompt(
        prompt_id=cast(str, prompt_id),
        campaign_id=cast(str, _str(raw, "campaign_id", 64)),
        question=Question(
            type=q["type"],
            text=cast(str, _str(q, "text", 1000)),
            follow_up=_str(q, "follow_up", 1000, required=False),
        ),
        trigger=raw["trigger"],
        created_at=created_at,
        expires_at=expires_at,
        anonymous=anonymous,
        trigger_event_id=_str(raw, "trigger_event_id", 64, required=False),
    )


def answer_to_json(answer: Answer) -> str:
    """The answer file's text (version 1; times in UTC). Carries no user identity."""
    return json.dumps(
        {
            "v": 1,
            "prompt_id": answer.prompt_id,
            "campaign_id": answer.campaign_id,
            "outcome": answer.outcome,
            "shown_at": _iso(answer.shown_at),
            "answered_at": _iso(answer.answered_at),
            "value": answer.value,
            "comment": answer.comment,
        },
        ensure_ascii=False,
    )


def answer_from_json(text: str | bytes) -> Answer:
    """Parse an answer file, checking its shape (not its scale: see ``collect_answers``).

    Raises ValueError naming the field at fault.
    """
    raw = _load(text)
    unknown = set(raw) - _ANSWER_KEYS
    if unknown:
        raise _Invalid("invalid", f"{sorted(unknown)[0]}: unknown key")
    if raw.get("v", 1) != 1:
        raise _Invalid("invalid", "v: unknown version")
    prompt_id = cast(str, _str(raw, "prompt_id", 128))
    campaign_id = cast(str, _str(raw, "campaign_id", 64))
    outcome = raw.get("outcome")
    if outcome not in OUTCOMES:
        raise _Invalid("invalid", f"outcome: must be one of {', '.join(OUTCOMES)}")
    value = raw.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _Invalid("invalid", "value: must be a whole number")
    if (value is None) != (outcome != "answered"):
        raise _Invalid("invalid", "value: required when answered, and only then")
    comment = raw.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise _Invalid("invalid", "comment: must be a string")
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise _Invalid("invalid", f"comment: longer than {MAX_COMMENT_CHARS} chars")
    shown_at = _time(raw, "shown_at", False)
    answered_at = _time(raw, "answered_at", False)
    if shown_at is not None and answered_at is not None and answered_at < shown_at:
        raise _Invalid("invalid", "answered_at: before shown_at")
    return Answer(
        prompt_id=prompt_id,
        campaign_id=campaign_id,
        outcome=outcome,
        shown_at=shown_at,
        answered_at=answered_at,
        value=value,
        comment=comment or None,
    )


def _load(text: str | bytes) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _Invalid("malformed", f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(raw, dict):
        raise _Invalid("malformed", "not a JSON object")
    return raw


class SurveyBox:
    """The prompt box at ``root`` (see the module docstring for layout and handshake).

    ``create=True`` (the service) creates the directories and enforces their modes;
    ``create=False`` (the helper) only opens an existing box and raises :class:`BoxError`
    when it is missing or unusable. ``shared=True`` selects the modes of a box shared with
    every local account (a system service with per-user helpers); the helper side takes
    them by itself when the box belongs to another account.
    """

    def __init__(self, root: Path, *, shared: bool = False, create: bool = True) -> None:
        """Open (and with ``create``, create) the box at ``root``."""
        self.root = Path(root)
        self.shared = shared
        self.prompts_dir = self.root / "prompts"
        self.answers_dir = self.root / "answers"
        self.rejected_dir = self.root / "rejected"
        self._prompt_mode = 0o644 if shared else 0o600
        self._answer_mode = 0o640 if shared else 0o600
        self._journal_mode = 0o600
        self._rejections: dict[str, int] = {}
        self._warned: set[str] = set()
        if create:
            self._create()
        else:
            self._check_helper_access()
            # another account's box (the service's): answers must be readable by it
            # through their group, whatever the caller said
            if (
                not shared
                and hasattr(os, "getuid")
                and os.stat(self.answers_dir).st_uid != os.getuid()
            ):
                self.shared = True
                self._prompt_mode, self._answer_mode = 0o644, 0o640

    def _create(self) -> None:
        modes = (
            [(self.root, 0o755), (self.prompts_dir, 0o755), (self.answers_dir, 0o3733)]
            if self.shared
            else [(self.root, 0o700), (self.prompts_dir, 0o700), (self.answers_dir, 0o700)]
        )
        for path, mode in [*modes, (self.rejected_dir, 0o700)]:
            try:
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.chmod(path, mode)
            except OSError as exc:
                raise BoxError(
                    f"cannot set up the survey box at {self.root}: "
                    f"{path.name}/: {exc.strerror or exc}"
                ) from exc
            if (
                os.name == "posix"
                and stat.S_IMODE(os.stat(path).st_mode) != mode
                and str(path) not in _MODE_WARNED
            ):
                # e.g. setgid dropped: the directory's group is not one of the service's
                _MODE_WARNED.add(str(path))  # once per process, not at every round
                log.warning(
                    "survey box: %s has mode %o, not %o (check its owner and group)",
                    path,
                    stat.S_IMODE(os.stat(path).st_mode),
                    mode,
                )

    def _check_helper_access(self) -> None:
        closed = BoxError(
            f"the survey box at {self.root} is not open to this account (a service's "
            f"private box? point the helper at the shared box with --box)"
        )
        try:
            os.stat(self.root)
        except PermissionError:
            raise closed from None
        except OSError:
            raise BoxError(f"no survey box at {self.root}") from None
        if not os.access(self.root, os.X_OK):
            raise closed
        for path in (self.prompts_dir, self.answers_dir):
            if not path.is_dir():
                raise BoxError(f"no survey box at {self.root} ({path.name}/ is missing)")
        if not os.access(self.prompts_dir, os.R_OK | os.X_OK):
            raise BoxError(f"the survey box at {self.root}: prompts/ is not readable")
        if not os.access(self.answers_dir, os.W_OK | os.X_OK):
            raise BoxError(f"the survey box at {self.root}: answers/ is not writable")

    # -- service side --------------------------------------------------------------------

    def post(self, prompt: Prompt) -> None:
        """Write a prompt for the helper (atomically; posting the same prompt again is fine)."""
        name = _check_id(prompt.prompt_id) + ".json"
        self._write(
            self.prompts_dir, name, prompt_to_json(prompt), mode=self._prompt_mode, exclusive=False
        )

    def withdraw(self, prompt_id: str) -> None:
        """Remove a prompt the helper should no longer show (expired or superseded).

        A prompt with an answer waiting is left for :meth:`collect_answers`, which removes
        both, so an answer given at the last moment is not lost.
        """
        name = _check_id(prompt_id) + ".json"
        if os.path.lexists(self.answers_dir / name):
            return
        _unlink(self.prompts_dir / name)

    def open_prompts(self) -> list[Prompt]:
        """Every readable prompt in the box (expired or not), oldest first."""
        return sorted((p for _, p in self._prompts()), key=lambda p: (p.created_at, p.prompt_id))

    def collect_answers(
        self, sink: Callable[[list[tuple[Prompt, Answer]]], None] | None = None
    ) -> list[Answer]:
        """Read, validate and remove the helper's answers; return the valid ones.

        ``sink`` (optional) receives the valid answers with their prompts *before* any file
        is removed: spool them there. If ``sink`` raises, nothing is removed and the error
        propagates; the same answers come back at the next call. Refused files are moved
        aside and counted (:attr:`rejections`); they never raise.
        """
        collected = self._journal()
        valid: list[tuple[Prompt, Answer, str]] = []
        refused: list[tuple[str, str, str]] = []
        try:
            names = sorted(os.listdir(self.answers_dir))
        except OSError as exc:
            log.warning("survey box: cannot list %s: %s", self.answers_dir, exc)
            return []
        for name in names:
            if name.startswith(_TEMP_PREFIX):
                self._sweep_temp(self.answers_dir / name)
                continue
            try:
                prompt, answer = self._check_answer(name, collected)
            except _Invalid as exc:
                refused.append((name, exc.reason, str(exc)))
                continue
            valid.append((prompt, answer, name))
        if valid and sink is not None:
            sink([(p, a) for p, a, _ in valid])
        now = datetime.now(UTC)
        if valid:
            for _, answer, _ in valid:
                collected[answer.prompt_id] = now
            self._save_journal(collected)
        for _, answer, name in valid:
            _unlink(self.answers_dir / name)
            _unlink(self.prompts_dir / (answer.prompt_id + ".json"))
        for name, reason, detail in refused:
            self._refuse(name, reason, detail)
            if reason == "duplicate":  # a leftover of a collection cut short
                _unlink(self.prompts_dir / name)
        return [a for _, a, _ in valid]

    @property
    def rejections(self) -> dict[str, int]:
        """Answer files refused by this box object so far, by reason (a copy)."""
        return dict(self._rejections)

    def take_rejections(self) -> dict[str, int]:
        """The refusals by reason since the previous take (for ``agent_health``); resets."""
        out, self._rejections = self._rejections, {}
        return out

    # -- helper side ---------------------------------------------------------------------

    def pending(self, now: datetime) -> list[Prompt]:
        """The prompts to show now: unexpired and not yet answered, oldest first."""
        out = [
            p
            for name, p in self._prompts()
            if p.expires_at > now and not os.path.lexists(self.answers_dir / name)
        ]
        return sorted(out, key=lambda p: (p.created_at, p.prompt_id))

    def answer(self, answer: Answer) -> None:
        """Write the helper's answer to a prompt (atomically, at most once per prompt).

        Raises FileExistsError when the prompt already has an answer waiting (the first one
        stands) and ValueError for a prompt id that is not a safe file name.
        """
        name = _check_id(answer.prompt_id) + ".json"
        self._write(
            self.answers_dir, name, answer_to_json(answer), mode=self._answer_mode, exclusive=True
        )

    # -- internals -----------------------------------------------------------------------

    def _write(self, directory: Path, name: str, text: str, *, mode: int, exclusive: bool) -> None:
        tmp = directory / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                if hasattr(os, "fchmod"):
                    os.fchmod(handle.fileno(), mode)  # whatever the umask
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if not exclusive:
                os.replace(tmp, directory / name)
                return
            try:
                os.link(tmp, directory / name)  # fails if an answer is already there
            except FileExistsError:
                raise
            except OSError:  # no hard links on this file system: best effort
                if os.path.lexists(directory / name):
                    raise FileExistsError(f"{directory / name} already exists") from None
                os.replace(tmp, directory / name)
        finally:
            _unlink(tmp)

    def _read(self, path: Path) -> bytes:
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise _Invalid("unreadable", str(exc)) from None
        if not stat.S_ISREG(st.st_mode):
            raise _Invalid("not_a_file", "not a regular file")
        if st.st_size > MAX_ANSWER_BYTES:
            raise _Invalid("oversized", f"{st.st_size} bytes > {MAX_ANSWER_BYTES}")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise _Invalid("unreadable", str(exc)) from None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise _Invalid("not_a_file", "not a regular file")
            data = handle.read(MAX_ANSWER_BYTES + 1)
        if len(data) > MAX_ANSWER_BYTES:
            raise _Invalid("oversized", f"more than {MAX_ANSWER_BYTES} bytes")
        return data

    def _prompts(self) -> list[tuple[str, Prompt]]:
        try:
            names = sorted(os.listdir(self.prompts_dir))
        except OSError as exc:
            log.warning("survey box: cannot list %s: %s", self.prompts_dir, exc)
            return []
        out = []
        for name in names:
            if name.startswith(_TEMP_PREFIX):
                continue
            try:
                if not name.endswith(".json") or not _ID.fullmatch(name[:-5]):
                    raise _Invalid("bad_name", "not <prompt_id>.json")
                prompt = prompt_from_json(self._read(self.prompts_dir / name))
                if prompt.prompt_id != name[:-5]:
                    raise _Invalid("name_mismatch", "prompt id differs from the file name")
            except _Invalid as exc:
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("survey box: ignoring prompt file %r: %s", name, exc)
                continue
            out.append((name, prompt))
        return out

    def _check_answer(self, name: str, collected: Mapping[str, datetime]) -> tuple[Prompt, Answer]:
        if not name.endswith(".json") or not _ID.fullmatch(name[:-5]):
            raise _Invalid("bad_name", "not <prompt_id>.json")
        answer = answer_from_json(self._read(self.answers_dir / name))
        if answer.prompt_id != name[:-5]:
            raise _Invalid("name_mismatch", "prompt id differs from the file name")
        if answer.prompt_id in collected:
            raise _Invalid("duplicate", "this prompt was already collected")
        prompt_path = self.prompts_dir / name
        try:
            prompt = prompt_from_json(self._read(prompt_path))
            owner = os.lstat(prompt_path).st_uid
        except (_Invalid, OSError):
            raise _Invalid("unknown_prompt", "no such prompt was posted") from None
        if hasattr(os, "getuid") and owner != os.getuid():
            raise _Invalid("unknown_prompt", "the prompt file was not posted by the service")
        if prompt.prompt_id != answer.prompt_id:
            raise _Invalid("unknown_prompt", "the prompt file is inconsistent")
        if prompt.campaign_id != answer.campaign_id:
            raise _Invalid("campaign_mismatch", "campaign id differs from the prompt's")
        lo, hi = SCALES[prompt.question.type]
        if answer.value is not None and not lo <= answer.value <= hi:
            raise _Invalid("off_scale", f"value {answer.value} is not in {lo}..{hi}")
        return prompt, answer

    def _refuse(self, name: str, reason: str, detail: str) -> None:
        self._rejections[reason] = self._rejections.get(reason, 0) + 1
        log.warning("survey box: refused answer file %r (%s): %s", name, reason, detail)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].lstrip(".") or "_"
        target = self.rejected_dir / f"{time.time_ns()}-{reason}-{safe}"
        try:
            os.rename(self.answers_dir / name, target)
        except OSError:
            # another account's directory cannot be moved (it takes write access to it):
            # remove it when it is empty, never walk a tree a user planted
            path = self.answers_dir / name
            if os.path.isdir(path) and not os.path.islink(path):
                try:
                    os.rmdir(path)
                except OSError as exc:
                    log.warning("survey box: cannot remove %s: %s", path, exc)
            else:
                _unlink(path)
            return
        try:
            kept = sorted(os.listdir(self.rejected_dir))
        except OSError:
            return
        for old in kept[: max(0, len(kept) - _REJECTED_KEEP)]:
            path = self.rejected_dir / old
            try:
                if path.is_dir() and not path.is_symlink():
                    os.rmdir(path)  # only empty ones: never walk a tree a user planted
                else:
                    path.unlink()
            except OSError:
                pass

    def _sweep_temp(self, path: Path) -> None:
        try:
            age = time.time() - os.lstat(path).st_mtime
        except OSError:
            return
        if age > _STALE_TEMP_S:
            _unlink(path)
            self._rejections["stale_temp"] = self._rejections.get("stale_temp", 0) + 1
            log.info("survey box: removed an abandoned temporary file %r", path.name)

    def _journal(self) -> dict[str, datetime]:
        try:
            raw = json.loads((self.root / "collected.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("survey box: collected.json is unreadable, starting afresh: %s", exc)
            return {}
        out: dict[str, datetime] = {}
        if isinstance(raw, dict):
            for key, value in raw.items():
                try:
                    out[str(key)] = datetime.fromisoformat(str(value)).astimezone(UTC)
                except ValueError:
                    continue
        return out

    def _save_journal(self, collected: dict[str, datetime]) -> None:
        horizon = datetime.now(UTC) - timedelta(days=_JOURNAL_DAYS)
        kept = sorted(((t, k) for k, t in collected.items() if t >= horizon), reverse=True)
        data = {k: _iso(t) for t, k in kept[:_JOURNAL_MAX]}
        self._write(
            self.root, "collected.json", json.dumps(data), mode=self._journal_mode, exclusive=False
        )


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        pass
    except OSError as exc:
        log.warning("survey box: cannot remove %s: %s", path, exc)
