"""``report.html`` in a real browser: headless Chromium driven over the DevTools protocol.

Checks what only a browser can: the page loads offline with no console errors (a blocked fetch,
a CSP violation or a script error would all be reported), record values containing markup are
rendered as text, the charts are there with their markers, and the layout holds — nothing scrolls
sideways at 1,400 or 800 px, even with very long record values, and the page stays short for the
number of keys it lists. The screenshot of the generated organisation's report
under ``docs/`` is refreshed with ``KEYTRAIL_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.publish import fixture as f
from tests.publish.conftest import BuiltReport
from tests.publish.helpers import UPDATE

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report-screenshot.png"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium (/usr/bin/chromium, Debian package 'chromium') is not installed",
)


class Browser:
    """A headless Chromium and one page, over the DevTools websocket (no extra packages)."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.url = self._devtools_url()
        from websockets.sync.client import connect

        self.socket = connect(self.url, max_size=None, open_timeout=20)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _devtools_url(self) -> str:
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                return match.group(1)
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError("Chromium did not open its DevTools endpoint")

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False,
             timeout: float = 20.0) -> dict[str, Any]:  # fmt: skip
        message: dict[str, Any] = {"id": next(self.ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.socket.recv(timeout=timeout))
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_for(self, method: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while time.monotonic() < deadline:
            event = json.loads(self.socket.recv(timeout=timeout))
            self.events.append(event)
            if event.get("method") == method:
                return
        raise TimeoutError(method)

    def open(self, page: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": page.resolve().as_uri()}, session=True)
        self.wait_for("Page.loadEventFired")
        time.sleep(0.3)  # let late console messages (CSP reports) arrive
        self.call("Runtime.evaluate", {"expression": "1"}, session=True)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           session=True)  # fmt: skip
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries since the last open()."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"uncaught: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in (
                "error",
                "warning",
            ):
                found.append(f"log {params['entry']['level']}: {params['entry'].get('text')}")
        return found

    def screenshot(self, width: int, height: int) -> bytes:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=True)  # fmt: skip
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        return base64.b64decode(data)

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    session = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield session
    finally:
        session.close()


def _offline_copy(report: BuiltReport, tmp_path: Path) -> Path:
    """The page alone in an empty folder: it must need nothing beside it."""
    page = tmp_path / "report.html"
    shutil.copyfile(report.files["report.html"], page)
    return page


def test_fixture_report_opens_without_console_errors(
    browser: Browser, fixture_report: BuiltReport, tmp_path: Path
) -> None:
    browser.open(_offline_copy(fixture_report, tmp_path))
    assert browser.problems() == []
    assert browser.evaluate("document.title") == "keytrail · KMS key report 2026-11-09"


def test_script_user_agent_is_shown_as_text(
    browser: Browser, fixture_report: BuiltReport, tmp_path: Path
) -> None:
    browser.open(_offline_copy(fixture_report, tmp_path))
    assert browser.evaluate("document.querySelectorAll('script').length") == 0
    cells = browser.evaluate(
        "[...document.querySelectorAll('td')].map(td => td.textContent)"
        f".filter(text => text === {json.dumps(f.SCRIPT_AGENT)}).length"
    )
    assert cells >= 1
    assert f.SCRIPT_AGENT in browser.evaluate("document.body.innerText")


def test_the_console_check_would_notice_a_blocked_script(browser: Browser, tmp_path: Path) -> None:
    """Negative control: the same policy, a page that breaks it, and the check must see it."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'\"></head><body><script>console.log(1)</script>"
        "<p>x</p></body></html>"
    )
    browser.open(page)
    assert any("Content Security Policy" in problem for problem in browser.problems())


def test_charts_are_inline_svg(
    browser: Browser, fixture_report: BuiltReport, tmp_path: Path
) -> None:
    browser.open(_offline_copy(fixture_report, tmp_path))
    assert browser.evaluate("document.querySelectorAll('#charts svg.chart').length") == 2
    assert browser.evaluate("document.querySelectorAll('svg .bar.over').length") > 0


def test_the_demos_report_opens_cleanly_and_is_the_docs_screenshot(
    browser: Browser, sample_report: BuiltReport, tmp_path: Path
) -> None:
    """The README shows the report ``make demo`` writes for the sample's last day."""
    browser.open(_offline_copy(sample_report, tmp_path))
    assert browser.problems() == []
    assert browser.evaluate("document.querySelectorAll('article.alert').length") == (
        sample_report.report.active_alerts.height
    )
    image = browser.screenshot(1400, 2000)
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    if UPDATE:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(image)
    assert SCREENSHOT.exists(), f"{SCREENSHOT} is missing: run with KEYTRAIL_UPDATE_GOLDEN=1"
    width, height = (
        int.from_bytes(SCREENSHOT.read_bytes()[16:20]),
        int.from_bytes(SCREENSHOT.read_bytes()[20:24]),
    )
    assert (width, height) == (1400, 2000)


def test_incident_timeline_is_rendered_above_the_alerts(
    browser: Browser, fixture_report: BuiltReport, tmp_path: Path
) -> None:
    browser.open(_offline_copy(fixture_report, tmp_path))
    assert browser.problems() == []
    incident = fixture_report.report.incidents.row(0, named=True)
    timeline = f"document.querySelector('#incident-{incident['incident_id']} ol.timeline')"
    box = browser.evaluate(f"(() => {{ const r = {timeline}.getBoundingClientRect(); "
                           "return [r.top, r.height, r.width]; })()")  # fmt: skip
    assert box[1] > 0 and box[2] > 0
    alerts_top = browser.evaluate("document.querySelector('#alerts').getBoundingClientRect().top")
    assert box[0] < alerts_top
    entries = browser.evaluate(f"[...{timeline}.querySelectorAll('li')].map(li => li.innerText)")
    assert len(entries) == len(incident["timeline"])
    for shown, entry in zip(entries, incident["timeline"], strict=True):
        assert entry["detector"] in shown
        assert f"{entry['time']:%Y-%m-%d %H:%M} UTC" in shown
        assert " ".join(entry["what"].split())[:60] in " ".join(shown.split())
    hidden = browser.evaluate(
        f"[...{timeline}.querySelectorAll('li')].filter(li => li.offsetHeight === 0).length"
    )
    assert hidden == 0


_LAYOUT = """(() => {
  const main = document.querySelector('main');
  const box = main.getBoundingClientRect();
  const right = box.right - parseFloat(getComputedStyle(main).paddingRight);
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '') +
    ' in #' + (el.closest('section') || main).id + ': ' + (el.textContent || '').slice(0, 40);
  const overflowing = [];
  for (const el of main.querySelectorAll('*')) {
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) continue;
    if (rect.right > right + 1) overflowing.push('past the page: ' + name(el));
    const style = getComputedStyle(el);
    if (style.overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1)
      overflowing.push('scrolls sideways: ' + name(el));
  }
  for (const table of main.querySelectorAll('table')) {
    const width = table.getBoundingClientRect().width;
    if (width > table.parentElement.clientWidth + 1)
      overflowing.push('wider than its container: ' + name(table));
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
          scrollHeight: document.documentElement.scrollHeight, overflowing};
})()"""

HEIGHT_PER_KEY_BOUND = {1400: 600, 800: 1000}
"""Pixels of page per key the sample report may take, by viewport width (see the test below)."""


@pytest.mark.parametrize("width", sorted(HEIGHT_PER_KEY_BOUND))
def test_sample_report_fits_the_window_and_stays_short(
    browser: Browser, sample_report: BuiltReport, tmp_path: Path, width: int
) -> None:
    """The sample trail's report (29 keys, most never managed in the window so their rotation
    is unknown) read at a desktop width and at a narrow one: nothing may scroll sideways — the
    page, a table or any element in it — and the page must stay short for the keys it lists.

    Page height per key is ``scrollHeight`` / keys in the inventory. With full ARNs in every key
    column the key column was a few characters wide, each ARN wrapped over many lines, and the
    page measured 37,761 px at 1,400 px (1,302 px per key) and 71,525 px at 800 px (2,466 per
    key), with the inventory scrolling sideways at both widths. With keys named by label (the
    ARN in a tooltip and the key legend), unknown rotation grouped by reason and tables that
    wrap inside the page it measures 15,737 px (543 per key) and 25,324 px (873 per key). The
    bounds — 600 and 1,000 px per key — leave room for a few more alerts, and fail if a full-ARN
    column came back to any of the large tables (the old rotation table alone would add ~155 px
    per key at 1,400 px, the old inventory ~450).
    """
    bound = HEIGHT_PER_KEY_BOUND[width]
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                 session=True)  # fmt: skip
    try:
        browser.open(_offline_copy(sample_report, tmp_path))
        assert browser.problems() == []
        layout = browser.evaluate(_LAYOUT)
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride", session=True)
    assert layout["innerWidth"] == width
    assert layout["scrollWidth"] <= layout["innerWidth"], layout
    assert layout["overflowing"] == []
    keys = sample_report.report.keys.height
    assert keys >= 20
    per_key = layout["scrollHeight"] / keys
    print(f"{width}px: {layout['scrollHeight']} px for {keys} keys = {per_key:.0f} px per key")
    assert per_key <= bound, f"{per_key:.0f} px of page per key at {width} px (bound {bound})"


def test_long_record_values_wrap_inside_the_page(
    browser: Browser, fixture_report: BuiltReport, tmp_path: Path
) -> None:
    """Attacker-chosen values with no break opportunity (a 3,000-character user agent, actor,
    key ARN and alias) wrap or are cut inside their cells at 800 px: the page never scrolls
    sideways."""
    from analytics.publish.reports import html
    from tests.publish.test_hostile_outputs import _with_text

    long = "Z" * 3000
    report = _with_text(fixture_report.report, long)
    keys = report.keys.with_columns(pl.lit([f"alias/{long}"]).alias("aliases"))
    page = tmp_path / "report.html"
    page.write_text(html.render(dataclasses.replace(report, keys=keys)), "utf-8")
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": 800, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                 session=True)  # fmt: skip
    try:
        browser.open(page)
        layout = browser.evaluate(_LAYOUT)
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride", session=True)
    assert browser.problems() == []
    assert layout["scrollWidth"] <= layout["innerWidth"], layout["scrollWidth"]
    assert layout["overflowing"] == []
    assert browser.evaluate("document.body.innerText").count("Z" * 300) > 0


def test_charts_mark_changes_to_the_key_and_paint_only_alerted_hours_red(
    browser: Browser, sample_report: BuiltReport, tmp_path: Path
) -> None:
    """key/c4761df1 was disabled at 13:06 and scheduled for deletion at 13:11: both are numbered
    markers on its chart, listed under it; red bars are hours of an alert on the key, nothing
    else."""
    report = sample_report.report
    key = next(k for k in report.bands.get_column("key_arn").unique() if "c4761df1" in k)
    browser.open(_offline_copy(sample_report, tmp_path))
    assert browser.problems() == []
    figure = (
        "[...document.querySelectorAll('#charts figure')]"
        f".find(f => f.querySelector('span.key').title.startsWith({json.dumps(key)}))"
    )
    markers = browser.evaluate(
        f"[...{figure}.querySelectorAll('svg .marker')].map(m => "
        "[m.querySelector('text').textContent, m.querySelector('title').textContent, "
        "m.querySelector('line').getBoundingClientRect().height])"
    )
    assert [(number, name) for number, name, _h in markers] == [
        ("1", next(t for t in (m[1] for m in markers) if "DisableKey" in t)),
        ("2", next(t for t in (m[1] for m in markers) if "ScheduleKeyDeletion" in t)),
    ]
    assert all(height > 100 for _n, _t, height in markers)
    listed = browser.evaluate(
        f"[...{figure}.querySelectorAll('ol.markers li')].map(li => li.innerText)"
    )
    assert [item.split(" UTC ")[1].split(" by ")[0] for item in listed] == [
        "DisableKey",
        "ScheduleKeyDeletion",
    ]
    assert browser.evaluate(f"{figure}.querySelector('ul.legend').offsetHeight") > 0
    red = browser.evaluate(
        "[...document.querySelectorAll('#charts figure')].map(f => [f.querySelector('span.key')"
        ".title.split(' ')[0], [...f.querySelectorAll('svg .bar.alerted')].map(b => "
        "parseInt(b.querySelector('title').textContent.slice(0, 2)))])"
    )
    assert any(hours for _key, hours in red)
    for charted, hours in red:
        assert set(hours) <= report.alerted_hours(charted), charted
