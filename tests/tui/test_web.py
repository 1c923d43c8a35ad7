"""`coevo watch --web PORT` in a browser: headless Chromium (driven by Playwright) loads the page,
the app runs behind it, and the test reads what the page's terminal shows, types a key, and saves a
screenshot (its path is printed; pytest keeps it under its tmp directory). Skipped, with the
reason, where Chromium or Playwright is missing."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]

# textual-serve's page keeps its terminal to itself: the test's copy of the script hands it over.
EXPOSE = ("this.terminal.open(e)", "window.coevoTerminal=this.terminal,this.terminal.open(e)")
READ_SCREEN = """() => {
    const t = window.coevoTerminal;
    if (!t) return "";
    const lines = [];
    for (let i = 0; i < t.rows; i++) lines.push(t.buffer.active.getLine(i).translateToString(true));
    return lines.join("\\n");
}"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return int(probe.getsockname()[1])


def test_watch_web_serves_the_app_to_a_browser(fixed_run: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "coevo.cli", "watch", str(fixed_run), "--web", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("localhost", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.1)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})

            def expose(route: sync_api.Route) -> None:
                body = route.fetch().text().replace(*EXPOSE)
                route.fulfill(body=body, content_type="application/javascript")

            page.route("**/textual.js", expose)
            page.route("https://**", lambda route: route.abort())  # the page's web fonts: no network here
            page.goto(f"http://localhost:{port}/")

            def shows(text: str) -> str:
                page.wait_for_function(f"() => ({READ_SCREEN})().includes({text!r})", timeout=60_000)
                return str(page.evaluate(READ_SCREEN))

            screen = shows("edges (messages carried)")
            assert "replay (replay-fixture)" in screen and "finished" in screen
            assert "teacher (procedural)" in screen and "g Graph" in screen
            page.locator(".xterm-screen").click()  # keys go to the focused terminal, as for a person
            page.keyboard.press("m")
            screen = shows("filters: none")
            assert "following newest" in screen and "AdapterLoaded" in screen
            shot = tmp_path / "coevo-watch-web.png"
            page.screenshot(path=str(shot))
            print(f"screenshot: {shot}")
            assert shot.stat().st_size > 10_000
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
