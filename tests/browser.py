"""Headless Debian Chromium driven over the Chrome DevTools Protocol (a websocket; aiohttp, which
MLflow already depends on, speaks it): open a page, wait for text to appear, read the page's text
and location, save screenshots. No chromedriver or selenium needed."""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                  "--window-size=1600,1000", "--hide-scrollbars")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Browser:
    """One Chromium with a fresh profile and one page; call from synchronous tests."""

    def __init__(self, port: int, timeout: float = 60):
        self.profile = Path(tempfile.mkdtemp(prefix="gz-chromium-"))
        self.process = subprocess.Popen([chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                                         f"--remote-debugging-port={port}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.page_socket = self._page_socket(port, timeout)
        self.loop = asyncio.new_event_loop()
        self.ids = itertools.count(1)
        self.session = self.socket = None
        self.loop.run_until_complete(self._connect())

    def _page_socket(self, port: int, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                    pages = [t for t in json.load(answer) if t["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium's DevTools didn't answer on port {port} (exit {self.process.poll()})")
            time.sleep(0.5)

    async def _connect(self) -> None:
        import aiohttp
        self.session = aiohttp.ClientSession()
        self.socket = await self.session.ws_connect(self.page_socket, max_msg_size=0)

    async def _call(self, method: str, params: dict) -> dict:
        call_id = next(self.ids)
        await self.socket.send_json({"id": call_id, "method": method, "params": params})
        while True:   # skip events and other answers
            message = json.loads((await self.socket.receive(timeout=120)).data)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def call(self, method: str, **params) -> dict:
        return self.loop.run_until_complete(self._call(method, params))

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def location(self) -> str:
        return self.evaluate("location.href")

    def wait_for_text(self, *needles: str, timeout: float = 90) -> str:
        """The page's text once it holds every needle; an AssertionError with what it showed otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if all(n in text for n in needles):
                return text
            if time.monotonic() > deadline:
                missing = [n for n in needles if n not in text]
                raise AssertionError(f"{self.location()} never showed {missing} in {timeout:.0f} s; it showed:\n"
                                     f"{text[:3000]}")
            time.sleep(0.5)

    def click_text(self, label: str) -> bool:
        """Click the innermost visible element whose own text is `label` (a tab, a link, a button)."""
        return bool(self.evaluate(f"""(() => {{
            const all = [...document.querySelectorAll('a, button, [role=tab], [role=button], span, div')];
            const hits = all.filter(e => e.innerText && e.innerText.trim() === {json.dumps(label)}
                                         && e.offsetParent !== null);
            const hit = hits.find(e => e.tagName === 'A') || hits.pop();   // a link over its inner text
            if (hit) {{ hit.click(); return true; }} return false; }})()"""))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if self.socket is not None:
            self.loop.run_until_complete(self.socket.close())
            self.loop.run_until_complete(self.session.close())
        self.loop.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
