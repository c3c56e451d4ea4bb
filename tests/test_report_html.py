"""The run's HTML report: one self-contained page, checked against the ledger, then in a real
headless Chromium (Debian's, driven by playwright; skipped, saying why, when either is missing).

One small real production (a local Dask cluster, one bad image with a hostile file name) is run
with `medfeat run`, which must write RUN/report.html and print its path.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medfeat.production.ledger import Ledger
from production_helpers import make_images

CHROMIUM = os.environ.get("MEDFEAT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
BAD_NAME = 'bad <b>&"x".pgm'  # a file name that must be escaped wherever it shows


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medfeat", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    make_images(data, 9)
    (data / BAD_NAME).write_bytes(b"P5\n4 4\n255\n\x00")  # truncated: an error row
    run = root / "run"
    r = _cli("run", str(data), "-o", str(run), "--images-per-job", "4", "--workers", "2", "--families", "stat,ih",
             "--quiet")
    assert r.returncode == 2, r.stdout + r.stderr  # one failed image: exit 2, as before the report existed
    assert "warning" not in r.stderr, r.stderr
    # --quiet: no report line; the page is written all the same
    assert "report:" not in r.stdout
    assert (run / "report.html").is_file()
    return run


def _started_attempts(run: Path) -> set[int]:
    led = Ledger(run, readonly=True)
    try:
        return {a["attempt_id"] for a in led.attempts() if a["started"]}
    finally:
        led.close()


def _data_block(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="medfeat-data">(.*?)</script>', text, re.S)
    assert m, "the page carries its data"
    return json.loads(m.group(1))


def test_cli_writes_the_page_where_asked(run_dir, tmp_path):
    out = tmp_path / "sub" / "page.html"
    r = _cli("report", str(run_dir), "--html", "-o", str(out), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"report: {out}"
    assert out.read_text().startswith("<!DOCTYPE html>")
    r = _cli("report", str(run_dir), "--html", timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"report: {run_dir / 'report.html'}", r.stderr


def test_page_matches_the_ledger(run_dir):
    text = (run_dir / "report.html").read_text()
    started = _started_attempts(run_dir)
    assert started
    # one Gantt bar per attempt that started, named by its attempt id
    assert text.count('id="attempt-') == len(started)
    assert {int(i) for i in re.findall(r'id="attempt-(\d+)"', text)} == started
    data = _data_block(text)
    # the page's metrics are exactly what `medfeat report --json` prints
    r = _cli("report", str(run_dir), "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    assert data["metrics"] == json.loads(r.stdout)
    assert {a["attempt_id"] for a in data["attempts"] if a["started"]} == started
    assert data["failed_images"] == data["metrics"]["failed_images"] == 1
    # the run table leads with the seed's three figures
    table = text[text.index("<h2>Run table</h2>"):]
    firsts = re.findall(r"<tr[^>]*><td>([^<]+)</td>", table)[:3]
    assert firsts == ["average submission time per job", "summed running time", "user real waiting time"]
    for title in ("Attempts per worker (Gantt)", "Job times", "Throughput", "Queue wait against running time",
                  "Workers", "Failed images (1)"):
        assert f"<h2>{title}</h2>" in text
    assert text.count("<svg") == 4


def test_failed_image_listed_and_escaped(run_dir):
    text = (run_dir / "report.html").read_text()
    assert "bad &lt;b&gt;&amp;&quot;x&quot;.pgm" in text  # listed, with its reason
    assert "truncated" in text[text.index("<h2>Failed images"):]
    assert "<b>" not in text and 'x".pgm' not in text  # never raw, not even in the JSON block
    assert _data_block(text)  # the escaped JSON still parses


def test_page_is_self_contained(run_dir):
    text = (run_dir / "report.html").read_text()
    no_ns = re.sub(r'\s(?:xmlns(?::\w+)?)="[^"]*"', "", text)
    refs = re.findall(r'\b(?:src|href|xlink:href|action|poster|data)\s*=\s*["\']?([^"\'\s>]*)', no_ns, re.I)
    assert all(r.startswith("#") for r in refs), refs  # only references inside the page
    assert not re.search(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', no_ns, re.I)
    assert not re.search(r"url\(\s*['\"]?(?!#)", no_ns), "CSS or SVG url() to anything outside the page"
    assert "@import" not in text and "<link" not in text and "<iframe" not in text
    assert not re.search(r"<script(?![^>]*type=\"application/json\")", text), "no executable script"


def test_report_failure_never_fails_the_run(run_dir, tmp_path, monkeypatch):
    """The page is written at the end of `_run_production`; when that fails, one warning line,
    and the exit status stays what the run made it (here 2, for the failed image)."""
    from typer.testing import CliRunner

    import medfeat.report.html as html_mod
    from medfeat.cli import app

    def boom(*a, **k):
        raise RuntimeError("no room\nfor figures")

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    monkeypatch.setattr(html_mod, "write_html_report", boom)
    r = CliRunner().invoke(app, ["resume", str(copy), "--workers", "1"])
    assert r.exit_code == 2, r.output
    warnings = [line for line in r.output.splitlines() if "warning" in line]
    assert warnings == [f"medfeat: warning: could not write {copy / 'report.html'}: RuntimeError: no room for figures"]
    assert not (copy / "report.html").exists()


def test_report_in_headless_chromium(run_dir, tmp_path):
    """Load the page from file:// in Debian's chromium: no console error, no page error, no request
    but the page itself, a screenshot that is not blank, one DOM element per started attempt."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra has it)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM} (CI installs Debian's: apt-get install chromium)")
    from PIL import Image, ImageStat

    page_path = run_dir / "report.html"
    url = page_path.resolve().as_uri()
    requests, problems = [], []
    shot = tmp_path / "report.png"
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as exc:  # a chromium that cannot start here (no shared libraries ...)
            pytest.skip(f"chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda req: requests.append(req.url))
            page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                    if msg.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.goto(url, wait_until="load")
            bars = page.locator("[id^=attempt-]").count()
            svgs = page.locator("svg.figure").count()
            boxes = [page.locator("svg.figure").nth(i).bounding_box() for i in range(svgs)]
            title = page.title()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert requests == [url]
    assert bars == len(_started_attempts(run_dir))
    assert svgs == 4 and all(b and b["width"] > 300 and b["height"] > 100 for b in boxes), boxes
    assert title == f"medfeat run {run_dir.name}"
    img = Image.open(shot).convert("RGB")
    assert img.height > 900  # the full page, figures and tables, is taller than one screen
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 10
    assert max(ImageStat.Stat(img).stddev) > 10
