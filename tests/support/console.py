"""The console as a child process, and headless Chromium from Debian driven by Selenium.

The browser is the system one (/usr/bin/chromium with /usr/bin/chromedriver): giving the
driver's path means Selenium Manager never runs, so nothing is downloaded. Each driver gets a
fresh profile folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

from streams.settings import Settings, settings_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Skipped on a machine without the browser, never in CI (CI=true), where a missing install
#: must fail.
needs_browser = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
#: Screenshots go here when set (``CONSOLE_SCREENSHOTS_DIR=docs`` refreshes the README's), else
#: into the test's temporary folder, so an ordinary run leaves the work tree alone.
SCREENSHOTS_ENV = "CONSOLE_SCREENSHOTS_DIR"
_URL = re.compile(rb"console on (http://\S+/)")


class ConsoleProcess:
    """``python -m assetline.cli console`` on a free port (port 0), logging to a file."""

    def __init__(self, settings: Settings, log_path: Path, args: Sequence[str] = ()) -> None:
        self.settings = settings.model_copy(update={"console_host": "127.0.0.1", "console_port": 0})
        self.log_path = log_path
        #: command-line options after ``console`` (``--host``, ``--port``): they win over the env
        self.args = list(args)
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ConsoleProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETLINE_")}
        env.update(settings_env(self.settings))
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "assetline.cli", "console", *self.args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"console exited: {self.log_tail()}")
            found = _URL.search(self.log_path.read_bytes())
            if found:
                self.url = found.group(1).decode()
                if httpx.get(self.url + "healthz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"console did not start: {self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@contextlib.contextmanager
def chromium(profile_dir: Path, *, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver on the system browser; quit when the block ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """``predicate()``'s first truthy value (polled every 20 ms), else AssertionError.

    An element that went stale or is not there yet counts as "not yet": a predicate that reads
    the page can run while the browser replaces it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (StaleElementReferenceException, NoSuchElementException):
            value = None
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def arrived(driver: Any, match: Callable[[str], bool]) -> Callable[[], bool]:
    """A :func:`wait_for` predicate: the browser is on a URL ``match`` accepts, page loaded.

    The URL changes when the new page is committed, before its body is parsed: elements read on
    the URL alone can come from an empty page (a flaky empty list in CI, stop 25).
    """

    def check() -> bool:
        if not match(driver.current_url):
            return False
        return bool(driver.execute_script("return document.readyState") == "complete")

    return check


def signed_in_http(url: str, user: str, password: str, next_path: str = "/review") -> httpx.Client:
    """An HTTP client signed in through the sign-in form (its CSRF token included)."""
    client = httpx.Client(base_url=url, headers={"Accept": "text/html"})
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/signin").text)
    assert token
    form = {"user": user, "password": password, "csrf": token.group(1), "next": next_path}
    signed = client.post("/signin", data=form)
    assert signed.status_code == 303, signed.text
    return client
