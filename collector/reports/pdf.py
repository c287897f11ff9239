"""HTML to PDF with Debian's Chromium, run headless as a subprocess.

:func:`html_to_pdf` writes the document into a private temporary directory (mode 0700,
removed afterwards), runs::

    chromium --headless [--no-sandbox] --disable-gpu --no-pdf-header-footer
             --no-first-run --disable-background-networking --disable-component-update
             --disable-sync --user-data-dir=TMP/profile --print-to-pdf=TMP/out.pdf
             file://TMP/in.html

and returns the PDF's bytes. ``--no-sandbox`` is passed only when running as root (Chromium
refuses to start as root with its sandbox); ``--no-pdf-header-footer`` drops Chromium's own
date / URL / page-number header and footer, so everything printed in the margins comes from
the document. A fresh ``--user-data-dir`` per call keeps renders independent of each other
and of any profile on the machine.

Layout is the caller's: the HTML says the page size, the margins and what the margins show
with CSS paged media, which Chromium supports including margin boxes (since v131), e.g.::

    @page {
      size: A4;
      margin: 18mm 15mm;
      @top-left { content: "DexScope — XLA report"; }
      @bottom-right { content: "Page " counter(page) " of " counter(pages); }
    }

Chromium is found by :func:`find_chromium`: the ``DEXSCOPE_CHROMIUM`` environment variable
when set (authoritative: a wrong value is reported, not silently replaced), otherwise
``/usr/bin/chromium`` (Debian's ``chromium`` package), otherwise ``chromium`` on ``PATH``.

Chromium reports most failures (a page that does not load, an unwritable output) on stderr
and still exits 0, so success is judged by the output: a file that starts with ``%PDF-``.
Every failure raises :class:`PdfRenderError` saying what is missing or what failed.

The call blocks (typically well under a second per document, plus Chromium's start-up);
from async code run it in a worker thread. The document is loaded from a ``file://`` URL,
so it can reference files by absolute path; render only HTML the collector produced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Final

__all__ = [
    "CHROMIUM_ENV",
    "PdfRenderError",
    "find_chromium",
    "html_to_pdf",
]

CHROMIUM_ENV: Final = "DEXSCOPE_CHROMIUM"
"""Environment variable naming the Chromium binary (path, or a command name on ``PATH``)."""

_DEBIAN_CHROMIUM: Final = "/usr/bin/chromium"
_STDERR_TAIL_LINES: Final = 8
# Chromium's complaints about a missing D-Bus (normal in containers and services) drown the
# lines that explain a failure; they are left out of error messages.
_NOISE: Final = ("ERROR:dbus/",)


class PdfRenderError(RuntimeError):
    """A PDF could not be rendered: Chromium is missing, failed, timed out or wrote no PDF.

    The message says which, with Chromium's exit code and the last lines of its stderr when
    it ran. This is a server-side failure (the machine lacks a tool, or the tool broke), not
    a client error, so it is not an :class:`collector.errors.ApiError`.
    """


def find_chromium() -> str | None:
    """The Chromium binary to run, or ``None`` when there is none.

    ``$DEXSCOPE_CHROMIUM`` when set (a path, or a command name looked up on ``PATH``; if it
    names no executable the answer is ``None``, not a fallback), otherwise
    ``/usr/bin/chromium``, otherwise ``chromium`` on ``PATH``.
    """
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return shutil.which(configured)
    if os.path.isfile(_DEBIAN_CHROMIUM) and os.access(_DEBIAN_CHROMIUM, os.X_OK):
        return _DEBIAN_CHROMIUM
    return shutil.which("chromium")


def _missing_message() -> str:
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return (
            f"PDF export needs Chromium: {CHROMIUM_ENV} is set to {configured!r}, which is not "
            f"an executable file; point it at a Chromium binary, or unset it to use Debian's "
            f"chromium package"
        )
    return (
        f"PDF export needs Chromium: install Debian's chromium package (apt-get install "
        f"chromium) or set {CHROMIUM_ENV} to the path of a Chromium binary"
    )


def _command(chromium: str, work: Path, source: Path, out: Path) -> list[str]:
    cmd = [chromium, "--headless"]
    if os.geteuid() == 0:
        cmd.append("--no-sandbox")
    cmd += [
        "--disable-gpu",
        "--no-pdf-header-footer",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={work / 'profile'}",
        f"--print-to-pdf={out}",
        source.as_uri(),
    ]
    return cmd


def _stderr_tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(stderr unreadable)"
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not any(noise in ln for noise in _NOISE)]
    tail = useful[-_STDERR_TAIL_LINES:]
    return "\n".join(tail) if tail else "(stderr empty)"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL Chromium's whole process group (browser, zygote, renderers), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def html_to_pdf(html: str, *, timeout_s: float = 60.0) -> bytes:
    """Render the HTML document ``html`` to PDF with headless Chromium; return its bytes.

    Page size (A4 for reports), margins, running headers and page numbers come from the
    document's ``@page`` CSS. Chromium runs in its own process group; if it has not
    finished after ``timeout_s`` seconds the whole group is killed.

    Raises :class:`PdfRenderError` when Chromium is missing, cannot be started, exits
    non-zero, times out, or writes no PDF; :class:`ValueError` when ``timeout_s`` is not
    positive.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
    chromium = find_chromium()
    if chromium is None:
        raise PdfRenderError(_missing_message())
    with tempfile.TemporaryDirectory(prefix="dexscope-pdf-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        source, out, err_path = work / "in.html", work / "out.pdf", work / "stderr.log"
        source.write_text(html, encoding="utf-8")
        cmd = _command(chromium, work, source, out)
        with err_path.open("wb") as err:
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    cwd=work,
                    start_new_session=True,
                )
            except OSError as exc:
                raise PdfRenderError(
                    f"PDF export could not start Chromium ({chromium}): {exc}"
                ) from exc
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise PdfRenderError(
                    f"Chromium ({chromium}) did not finish the PDF within {timeout_s:g} s and "
                    f"was killed; last lines of its stderr:\n{_stderr_tail(err_path)}"
                ) from None
            except BaseException:
                _kill_group(proc)
                raise
        if returncode != 0:
            raise PdfRenderError(
                f"Chromium ({chromium}) exited with code {returncode} while printing to PDF; "
                f"last lines of its stderr:\n{_stderr_tail(err_path)}"
            )
        try:
            pdf = out.read_bytes()
        except FileNotFoundError:
            raise PdfRenderError(
                f"Chromium ({chromium}) exited 0 but wrote no PDF; last lines of its "
                f"stderr:\n{_stderr_tail(err_path)}"
            ) from None
    if not pdf.startswith(b"%PDF-"):
        raise PdfRenderError(
            f"Chromium ({chromium}) wrote {len(pdf)} bytes that are not a PDF "
            f"(they do not start with %PDF-)"
        )
    return pdf
