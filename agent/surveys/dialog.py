"""The survey helper: a small process in the user's session that shows the survey dialog.

``dexscope agent survey-helper --state-dir DIR`` runs :func:`run_helper` on the prompt box
``DIR/surveys`` (:mod:`agent.surveys.box`): it polls the box, and for each pending prompt
first asks the OS whether the user is busy (:func:`user_busy`); if so the prompt is left
pending (the planner sees it stay open and expires it in time). Otherwise it shows a small
always-on-top Tk window titled "DexScope survey" near the bottom-right corner of the screen
(:func:`show_dialog`) and writes what became of the prompt to the box as an
:class:`~agent.surveys.model.Answer`: ``answered`` (with the value and an optional comment),
``snoozed`` ("Later"), ``opted_out`` ("Don't ask me this again"), ``dismissed`` (Escape or
the window's close button) or ``expired`` (nobody answered within the timeout or before the
prompt's own expiry). ``shown_at`` and ``answered_at`` give the latency. The helper needs no
network and no elevated rights; it never knows who the user is (the service adds the user
hash for non-anonymous campaigns).

Keyboard: Tab and Shift+Tab move between the buttons (and the comment box); a digit picks
a value (NPS 10: type 1 then 0; yes/no: y or n too); Enter submits (or presses the focused
button); Escape dismisses. Without a follow-up question one click on a value submits; with
one, the value is picked, the comment box takes the focus, and "Send" or Enter submits. The
dialog does not steal the keyboard focus from the application the user is typing in: click
it (or Alt+Tab to it) first.

Busy detection: Windows asks ``SHQueryUserNotificationState`` (busy, full-screen Direct3D,
presentation mode, a full-screen app, or the user not present count as busy). Linux and
macOS have no such call: :func:`user_busy` answers None (not known) and the dialog is shown.

tkinter is imported only inside :func:`show_dialog`: the agent service imports this module
never, and importing it does not load Tk. For tests, ``DEXSCOPE_SURVEY_DEBUG_GEOMETRY=FILE``
makes the dialog write its widgets' screen rectangles to FILE (JSON) once it is shown.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agent.surveys.box import MAX_COMMENT_CHARS, SurveyBox
from agent.surveys.model import SCALES, Answer, Prompt

if TYPE_CHECKING:
    import tkinter as tk

__all__ = [
    "BUSY_STATES",
    "DEBUG_GEOMETRY_ENV",
    "TITLE",
    "DialogError",
    "run_helper",
    "scale_labels",
    "show_dialog",
    "user_busy",
]

log = logging.getLogger(__name__)

TITLE: Final = "DexScope survey"
"""The dialog's window title (stable, so tests and accessibility tools can find it)."""
DEBUG_GEOMETRY_ENV: Final = "DEXSCOPE_SURVEY_DEBUG_GEOMETRY"
"""When set to a file path, the dialog writes its widgets' screen rectangles there."""
BUSY_STATES: Final = frozenset({1, 2, 3, 4, 7})
"""``QUERY_USER_NOTIFICATION_STATE`` values that mean "do not disturb": QUNS_NOT_PRESENT
(1, locked or away), QUNS_BUSY (2), QUNS_RUNNING_D3D_FULL_SCREEN (3),
QUNS_PRESENTATION_MODE (4), QUNS_APP (7, a full-screen app or a call)."""

_FACES = ("\U0001f61e", "\U0001f615", "\U0001f610", "\U0001f60a", "\U0001f604")
_END_LABELS: Mapping[str, tuple[str, str]] = {
    "ces": ("Very difficult", "Very easy"),
    "nps": ("Not at all likely", "Extremely likely"),
}


class DialogError(Exception):
    """The dialog cannot be shown (no display, no Tk): a one-line message."""


def user_busy() -> bool | None:
    """Whether the OS says the user should not be disturbed now; None when it cannot tell.

    Windows: ``shell32.SHQueryUserNotificationState`` (see :data:`BUSY_STATES`). Linux and
    macOS: None (best effort: no portable "full screen or in a call" signal).
    """
    if sys.platform != "win32":
        return None
    try:
        import ctypes

        state = ctypes.c_int(0)
        shell32: Any = ctypes.windll.shell32
        result = shell32.SHQueryUserNotificationState(ctypes.byref(state))
    except (AttributeError, OSError) as exc:
        log.debug("SHQueryUserNotificationState unavailable: %s", exc)
        return None
    if result != 0:  # an HRESULT error
        return None
    return state.value in BUSY_STATES


def scale_labels(question_type: str) -> list[tuple[int, str]]:
    """The answer buttons of a question type: (value, label), in display order."""
    lo, hi = SCALES[question_type]
    if question_type == "stars":
        return [(v, f"{v} \u2605") for v in range(lo, hi + 1)]
    if question_type == "emoji":
        return list(zip(range(lo, hi + 1), _FACES, strict=True))
    if question_type == "yes_no":
        return [(1, "Yes"), (0, "No")]
    return [(v, str(v)) for v in range(lo, hi + 1)]


def show_dialog(
    prompt: Prompt,
    *,
    timeout_s: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Answer:
    """Show the dialog for one prompt and return what became of it (blocks until closed).

    Raises :class:`DialogError` when no window can be opened (no display, no Tk).
    """
    try:
        import tkinter as tk
    except ImportError as exc:  # a Python built without Tk
        raise DialogError(f"tkinter is not available: {exc}") from exc
    try:
        root = tk.Tk(className="DexScope")
    except tk.TclError as exc:
        raise DialogError(f"cannot open the survey dialog: {exc}") from exc
    try:
        return _Dialog(root, prompt, timeout_s, clock).run()
    finally:
        with contextlib.suppress(tk.TclError):
            root.destroy()


class _Dialog:
    """The window's widgets and the state of one prompt's dialog."""

    def __init__(
        self,
        root: tk.Tk,
        prompt: Prompt,
        timeout_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        import tkinter as tk

        self.tk = tk
        self.root = root
        self.prompt = prompt
        self.timeout_s = timeout_s
        self.clock = clock
        self.question = prompt.question
        self.selected: int | None = None
        self.result: Answer | None = None
        self.shown_at: datetime | None = None
        self.last_digit: tuple[str, float] | None = None
        self.values: dict[int, tk.Button] = {}
        self.comment: tk.Entry | None = None
        self.send: tk.Button | None = None
        self._build()

    def _build(self) -> None:
        tk, root, q = self.tk, self.root, self.question
        root.withdraw()  # placed first, shown by run()
        root.title(TITLE)
        root.resizable(False, False)
        root.attributes("-topmost", True)
        root.protocol("WM_DELETE_WINDOW", lambda: self._close("dismissed"))
        frame = tk.Frame(root, padx=14, pady=12, name="body")
        frame.pack(fill="both", expand=True)
        tk.Label(frame, text=q.text, wraplength=360, justify="left", anchor="w").pack(
            fill="x", pady=(0, 8)
        )
        row = tk.Frame(frame, name="values")
        row.pack(fill="x")
        labels = scale_labels(q.type)
        small = len(labels) > 7
        for value, label in labels:
            button = tk.Button(
                row,
                text=label,
                name=f"value_{value}",
                width=2 if small else 4,
                command=lambda v=value: self._pick(v, submit=self.question.follow_up is None),
            )
            button.pack(side="left", padx=1 if small else 3)
            self.values[value] = button
        ends = _END_LABELS.get(q.type)
        if ends:
            legend = tk.Frame(frame)
            legend.pack(fill="x")
            tk.Label(legend, text=ends[0], fg="#555555").pack(side="left")
            tk.Label(legend, text=ends[1], fg="#555555").pack(side="right")
        if q.follow_up:
            tk.Label(frame, text=q.follow_up, wraplength=360, justify="left", anchor="w").pack(
                fill="x", pady=(10, 2)
            )
            limit = root.register(lambda proposed: len(proposed) <= MAX_COMMENT_CHARS)
            self.comment = tk.Entry(
                frame, name="comment", width=44, validate="key", validatecommand=(limit, "%P")
            )
            self.comment.pack(fill="x")
        actions = tk.Frame(frame, name="actions")
        actions.pack(fill="x", pady=(10, 0))
        if q.follow_up:
            self.send = tk.Button(
                actions, text="Send", name="send", state="disabled", command=self._submit
            )
            self.send.pack(side="left")
        # Tab order is creation order: values, comment, Send, Later, opt-out.
        later = tk.Button(
            actions, text="Later", name="later", command=lambda: self._close("snoozed")
        )
        opt_out = tk.Button(
            actions,
            text="Don't ask me this again",
            name="opt_out",
            command=lambda: self._close("opted_out"),
        )
        opt_out.pack(side="right")
        later.pack(side="right", padx=6)
        root.bind("<Key>", self._on_key)
        next(iter(self.values.values())).focus_set()

    def run(self) -> Answer:
        """Place the window, show it, wait for the user or the timeout."""
        root = self.root
        root.update_idletasks()
        width, height = root.winfo_reqwidth(), root.winfo_reqheight()
        x = max(0, root.winfo_screenwidth() - width - 24)
        y = max(0, root.winfo_screenheight() - height - 72)
        root.geometry(f"+{x}+{y}")
        root.deiconify()
        root.update()
        self.shown_at = self.clock()
        left = (self.prompt.expires_at - self.shown_at).total_seconds()
        root.after(max(1, int(min(self.timeout_s, left) * 1000)), lambda: self._close("expired"))
        debug = os.environ.get(DEBUG_GEOMETRY_ENV)
        if debug:
            root.after(50, lambda: self._dump_geometry(Path(debug)))
        root.mainloop()
        if self.result is None:  # the window went away without a decision
            self.result = self._answer("dismissed")
        return self.result

    def _answer(self, outcome: Any) -> Answer:
        now = self.clock()
        comment = self.comment.get().strip()[:MAX_COMMENT_CHARS] if self.comment else ""
        answered = outcome == "answered"
        return Answer(
            prompt_id=self.prompt.prompt_id,
            campaign_id=self.prompt.campaign_id,
            outcome=outcome,
            shown_at=self.shown_at,
            answered_at=None if outcome == "expired" else max(now, self.shown_at or now),
            value=self.selected if answered else None,
            comment=(comment or None) if answered else None,
        )

    def _close(self, outcome: str) -> None:
        if self.result is None:
            self.result = self._answer(outcome)
        self.root.quit()

    def _submit(self) -> None:
        if self.selected is None:
            self.root.bell()
            return
        self._close("answered")

    def _pick(self, value: int, *, submit: bool) -> None:
        self.selected = value
        for v, button in self.values.items():
            button.configure(relief="sunken" if v == value else "raised")
        if submit:
            self._submit()
            return
        if self.send is not None:
            self.send.configure(state="normal")
        if self.comment is not None:
            self.comment.focus_set()
        else:  # so that Enter submits this value, not the one that had the focus
            self.values[value].focus_set()

    def _on_key(self, event: tk.Event[Any]) -> str | None:
        widget = event.widget
        key = event.keysym
        if key == "Escape":
            self._close("dismissed")
            return "break"
        if key in ("Return", "KP_Enter"):
            if widget in self.values.values():
                for v, button in self.values.items():
                    if button is widget:
                        self._pick(v, submit=True)
            elif isinstance(widget, self.tk.Button):
                widget.invoke()
            else:
                self._submit()
            return "break"
        if widget is self.comment:
            return None  # typing a comment
        picked = self._value_for(event.char)
        if picked is not None:
            self._pick(picked, submit=False)
            return "break"
        return None

    def _value_for(self, char: str) -> int | None:
        if self.question.type == "yes_no" and char.lower() in ("y", "n"):
            return 1 if char.lower() == "y" else 0
        if not char.isdigit() or not char.isascii():
            return None
        lo, hi = SCALES[self.question.type]
        now = time.monotonic()
        previous, self.last_digit = self.last_digit, (char, now)
        if previous is not None and now - previous[1] < 1.0:
            two = int(previous[0] + char)
            if lo <= two <= hi and previous[0] != "0":
                return two
        digit = int(char)
        return digit if lo <= digit <= hi else None

    def _dump_geometry(self, path: Path) -> None:
        def rect(widget: tk.Misc) -> list[int]:
            return [
                widget.winfo_rootx(),
                widget.winfo_rooty(),
                widget.winfo_width(),
                widget.winfo_height(),
            ]

        out = {f"value_{v}": rect(b) for v, b in self.values.items()}
        out["window"] = rect(self.root)
        for name in ("comment", "send", "later", "opt_out"):
            found = [w for w in _descendants(self.root) if w.winfo_name() == name]
            if found:
                out[name] = rect(found[0])
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(out))
        os.replace(tmp, path)


def _descendants(widget: tk.Misc) -> list[tk.Misc]:
    out: list[tk.Misc] = []
    for child in widget.winfo_children():
        out.append(child)
        out.extend(_descendants(child))
    return out


def run_helper(box_dir: Path, *, once: bool, timeout_s: float, poll_s: float) -> int:
    """Show the box's pending prompts to the user, one at a time; return an exit code (0).

    Polls ``box_dir`` every ``poll_s`` seconds (with ``once``: a single pass, then return).
    A prompt is left pending while :func:`user_busy` says the user is busy; each prompt is
    shown at most once by one helper process. Raises :class:`~agent.surveys.box.BoxError`
    when the box is missing or unusable and, with ``once``, :class:`DialogError` when no
    window can be opened (without ``once`` that is logged and retried at the next poll).
    """
    box = SurveyBox(box_dir, create=False)
    handled: set[str] = set()
    while True:
        for prompt in box.pending(datetime.now(UTC)):
            if prompt.prompt_id in handled:
                continue
            if user_busy():
                log.info("user busy: prompt %s stays pending", prompt.prompt_id)
                continue
            try:
                answer = show_dialog(prompt, timeout_s=timeout_s)
            except DialogError as exc:
                if once:
                    raise
                log.warning("%s; trying again in %gs", exc, poll_s)
                break
            handled.add(prompt.prompt_id)
            try:
                box.answer(answer)
            except FileExistsError:
                log.info(
                    "prompt %s was already answered; the first answer stands", answer.prompt_id
                )
            except OSError as exc:
                log.error("cannot write the answer to %s: %s", box.answers_dir, exc)
            else:
                log.info("prompt %s: %s", answer.prompt_id, answer.outcome)
        if once:
            return 0
        time.sleep(poll_s)
