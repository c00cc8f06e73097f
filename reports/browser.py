"""Headless Chromium, offline: screenshots of the HTML report and a check that a page renders.

Used twice: as the PNG fallback when kaleido is not installed, and to check the report the way
a user sees it (the page must draw its plots with the network off and no script errors).
The browser gets a fresh profile and a dead proxy, so any attempt to fetch something (a CDN
script, fonts) fails loudly as `net::ERR_...` in the console, which `check_page` reports.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_CONSOLE = re.compile(r":CONSOLE(?::\d+)?\]\s*\"(.*)\", source: (.*)$")
# A console line is an error when a script threw, logged an Error object, or a fetch was refused.
_ERROR = re.compile(r"Uncaught|\b\w*Error\b|net::ERR_")


def find_chromium() -> str | None:
    """Chromium's path: $BROWSER_PATH (kaleido's variable) first, then the usual names on PATH."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).is_file():
        return env
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def offline_flags(profile: str) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",  # root in containers; the page is our own file
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--disable-extensions",
        "--disable-default-apps",
        "--hide-scrollbars",
        "--proxy-server=127.0.0.1:9",  # nothing listens there: every fetch fails
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        # Plotly draws after the script runs; virtual time lets the page finish before the dump.
        "--virtual-time-budget=10000",
    ]


@dataclass(frozen=True)
class PageCheck:
    dom: str
    console: tuple[str, ...]
    errors: tuple[str, ...]
    plots: int  # number of plotly SVG roots ('main-svg') in the rendered DOM

    @property
    def ok(self) -> bool:
        return not self.errors and self.plots > 0


def _run(chromium: str, args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="ffnet-nas-chromium-") as profile:
        return subprocess.run(
            [chromium, *offline_flags(profile), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def console_messages(stderr: str) -> tuple[str, ...]:
    return tuple(m.group(1) for m in map(_CONSOLE.search, stderr.splitlines()) if m)


def check_page(html: str | Path, *, chromium: str | None = None, timeout: float = 90) -> PageCheck:
    """Load `html` offline, let its scripts run, return the rendered DOM and console errors."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found: install it (Debian: apt-get install chromium) or set BROWSER_PATH")
    proc = _run(chromium, ["--dump-dom", Path(html).resolve().as_uri()], timeout=timeout)
    console = console_messages(proc.stderr)
    errors = tuple(c for c in console if _ERROR.search(c))
    if proc.returncode != 0:
        errors += (f"chromium exited with status {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}",)
    return PageCheck(dom=proc.stdout, console=console, errors=errors, plots=proc.stdout.count('class="main-svg"'))


def screenshot(html: str | Path, png: str | Path, *, width: int, height: int, chromium: str | None = None, timeout: float = 90) -> Path:
    """A PNG of the page at width x height pixels (the viewport, from the top-left corner)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found: install it (Debian: apt-get install chromium) or set BROWSER_PATH")
    png = Path(png)
    proc = _run(
        chromium,
        [f"--screenshot={png.resolve()}", f"--window-size={width},{height}", Path(html).resolve().as_uri()],
        timeout=timeout,
    )
    if proc.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium could not screenshot {html}: {proc.stderr.strip().splitlines()[-1:]}")
    return png
