"""Debian's Chromium, headless, driven through Debian's chromedriver by Selenium — no browser download. Every
step of a browser test leaves a screenshot in ``test-artifacts/browser/`` (``USERSYNC_ARTIFACTS`` overrides)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.support.repo import REPO

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# as the machine notes say: no background networking (this network is closed), a fresh profile
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("USERSYNC_ARTIFACTS") or REPO / "test-artifacts") / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Browser:
    def __init__(self, profile: Path, downloads: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.implicitly_wait(15)
        self.downloads = downloads
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                    {"behavior": "allow", "downloadPath": str(downloads)})
        self.shots: list[Path] = []

    def shot(self, name: str) -> Path:
        path = artifacts_dir() / f"{len(self.shots) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path

    def wait_for(self, predicate, timeout: float = 30, what: str = "condition"):
        """Poll ``predicate`` until it holds; an element that went stale (the page was replaced between finding it
        and reading it, as after a form's redirect) counts as "not yet"."""
        deadline = time.monotonic() + timeout
        while not (result := self._poll(predicate)):
            if time.monotonic() > deadline:
                self.shot(f"timeout-{what.replace(' ', '-')}")
                raise TimeoutError(f"browser: no {what} after {timeout:.0f} s (screenshot kept)")
            time.sleep(0.3)
        return result

    @staticmethod
    def _poll(predicate):
        from selenium.common.exceptions import StaleElementReferenceException

        try:
            return predicate()
        except StaleElementReferenceException:
            return None

    def quit(self) -> None:
        self.driver.quit()
