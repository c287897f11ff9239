"""``collector.reports.pdf``: real PDFs from Debian's Chromium, read back with poppler.

The rendering tests need Chromium (``chromium``) and poppler's ``pdfinfo``, ``pdftotext``
and ``pdftoppm`` (``poppler-utils``); outside CI a missing one skips them with the reason,
under ``CI=true`` it fails them (``./dev test`` installs both). The error-path tests run
everywhere: they use a missing binary or a small shell script standing in for Chromium.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from collector.charts import hbar_chart
from collector.reports import pdf
from collector.reports.pdf import PdfRenderError, find_chromium, html_to_pdf

FIGURE = "Median boot time: 41.7 s"
HEADER = "DexScope XLA report — Acme Corp"
BAR_RGB = (200, 16, 46)  # #c8102e, the chart's bars: nothing else on the page has it


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required under CI=true; ./dev test installs it)")
    pytest.skip(reason)


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        _unavailable(f"{name} is not installed (Debian {package})")
    assert found is not None
    return found


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout


def _report_html() -> str:
    chart = hbar_chart(
        [("slow boot", 41.7), ("app crashes", 12.0), ("low disk", 5.5)],
        title="Top contributors",
        unit="min",
        colour="#c8102e",
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>XLA report</title>
<style>
  @page {{
    size: A4;
    margin: 20mm 15mm;
    @top-left {{ content: "{HEADER}"; font: 9pt sans-serif; }}
    @bottom-right {{ content: "Page " counter(page) " of " counter(pages); font: 9pt sans-serif; }}
  }}
  body {{ font: 11pt sans-serif; }}
  .next {{ break-before: page; }}
</style></head>
<body>
  <h1>Digital experience, March</h1>
  <p>{FIGURE}</p>
  {chart}
  <h1 class="next">Detail</h1>
  <p>Second page.</p>
</body></html>
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-page report, rendered once, as a file poppler can read."""
    if find_chromium() is None:
        _unavailable("Chromium is not found (Debian chromium, or DEXSCOPE_CHROMIUM)")
    path = tmp_path_factory.mktemp("pdf") / "report.pdf"
    path.write_bytes(html_to_pdf(_report_html()))
    return path


def test_two_page_report_is_a4_with_css_page_numbers(rendered: Path) -> None:
    assert rendered.read_bytes().startswith(b"%PDF-")
    info = _run(_tool("pdfinfo", "poppler-utils"), str(rendered))
    assert re.search(r"^Pages:\s+2$", info, re.MULTILINE), info
    size = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", info, re.MULTILINE)
    assert size, info
    assert (round(float(size[1])), round(float(size[2]))) == (595, 842), info

    text = _run(_tool("pdftotext", "poppler-utils"), "-layout", str(rendered), "-")
    assert FIGURE in text
    assert "Top contributors" in text  # the SVG's own text is text in the PDF
    pages = text.split("\f")
    assert "Page 1 of 2" in pages[0]
    assert "Page 2 of 2" in pages[1]
    assert HEADER in pages[0] and HEADER in pages[1]
    assert "file://" not in text  # Chromium's own header/footer is off


def test_svg_chart_is_drawn(rendered: Path, tmp_path: Path) -> None:
    pdftoppm = _tool("pdftoppm", "poppler-utils")
    subprocess.run(
        [pdftoppm, "-r", "50", "-f", "1", "-l", "1", "-singlefile", str(rendered), "page"],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    data = (tmp_path / "page.ppm").read_bytes()
    magic, width, height, maxval, pixels = data.split(maxsplit=4)
    assert (magic, maxval) == (b"P6", b"255")
    assert len(pixels) == int(width) * int(height) * 3
    bar = sum(
        1
        for i in range(0, len(pixels), 3)
        if all(abs(pixels[i + c] - BAR_RGB[c]) <= 3 for c in range(3))
    )
    assert bar > 200, f"only {bar} pixels of the bars' colour on page 1"


def test_chromium_named_by_env_but_missing_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nowhere = tmp_path / "no-such-chromium"
    monkeypatch.setenv("DEXSCOPE_CHROMIUM", str(nowhere))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium() is None
    with pytest.raises(PdfRenderError) as caught:
        html_to_pdf("<p>x</p>")
    message = str(caught.value)
    assert message.startswith("PDF export needs Chromium: DEXSCOPE_CHROMIUM is set to ")
    assert str(nowhere) in message
    assert "not an executable file" in message


def test_no_chromium_anywhere_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEXSCOPE_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pdf, "_DEBIAN_CHROMIUM", str(tmp_path / "chromium-absent"))
    assert find_chromium() is None
    with pytest.raises(PdfRenderError) as caught:
        html_to_pdf("<p>x</p>")
    assert str(caught.value) == (
        "PDF export needs Chromium: install Debian's chromium package (apt-get install "
        "chromium) or set DEXSCOPE_CHROMIUM to the path of a Chromium binary"
    )


def _fake_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    script = tmp_path / "fake-chromium"
    script.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("DEXSCOPE_CHROMIUM", str(script))
    assert find_chromium() == str(script)
    return script


def test_chromium_failure_reports_exit_code_and_stderr_tail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_chromium(
        tmp_path,
        monkeypatch,
        'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "noise $i" >&2; done\n'
        'echo "[1:1:ERROR:dbus/bus.cc:405] Failed to connect to the bus" >&2\n'
        'echo "FATAL: cannot open display" >&2\n'
        "exit 3",
    )
    with pytest.raises(PdfRenderError) as caught:
        html_to_pdf("<p>x</p>")
    message = str(caught.value)
    assert "exited with code 3" in message
    assert message.endswith("noise 12\nFATAL: cannot open display")
    assert "noise 1\n" not in message  # only the last lines
    assert "dbus" not in message


def test_chromium_exiting_0_without_a_pdf_is_a_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_chromium(
        tmp_path, monkeypatch, 'echo "Page load failed: net::ERR_FILE_NOT_FOUND" >&2; exit 0'
    )
    with pytest.raises(PdfRenderError) as caught:
        html_to_pdf("<p>x</p>")
    assert "exited 0 but wrote no PDF" in str(caught.value)
    assert "ERR_FILE_NOT_FOUND" in str(caught.value)


def test_output_that_is_not_a_pdf_is_a_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_chromium(
        tmp_path,
        monkeypatch,
        'for a in "$@"; do case "$a" in --print-to-pdf=*) echo "<html>" > "${a#*=}";; esac; done',
    )
    with pytest.raises(PdfRenderError, match="not a PDF"):
        html_to_pdf("<p>x</p>")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has been killed


def test_timeout_kills_the_whole_process_group(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    _fake_chromium(
        tmp_path,
        monkeypatch,
        f'sleep 120 &\necho $! > "{pid_file}"\necho "still loading" >&2\nwait',
    )
    started = time.monotonic()
    with pytest.raises(PdfRenderError) as caught:
        html_to_pdf("<p>x</p>", timeout_s=1.0)
    assert time.monotonic() - started < 10
    assert "did not finish the PDF within 1 s and was killed" in str(caught.value)
    assert "still loading" in str(caught.value)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the grandchild outlived the timeout"


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        html_to_pdf("<p>x</p>", timeout_s=0)
