"""Headless Chromium, offline: screenshots of the HTML report and a check that a page renders.

Used twice: as the PNG fallback when kaleido is not installed, and to check the report the way
a user sees it (the page must draw its plots with the network off and no script errors).
The browser gets a fresh profile and a dead proxy, so any attempt to fetch something (a CDN
script, fonts) fails loudly as `net::ERR_...` in the console, which `check_page` reports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.space.errors import InvalidInput

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_CONSOLE = re.compile(r":CONSOLE(?::\d+)?\]\s*\"(.*)\", source: (.*)$")
# A console line is an error when a script threw, logged an Error object, or a fetch was refused.
# Only a rendered DOM has these attributes (plotly.js source holds the class names, not `class="..."`).
_PLOT_DIV = re.compile(r'<div[^>]*class="[^"]*\bjs-plotly-plot\b[^"]*"')
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
    fetches: tuple[str, ...]  # http(s)/ws URLs the page itself tried to load (must be none: offline)
    plots: int  # plotly graphs drawn: divs that Plotly.newPlot marked 'js-plotly-plot' and gave an SVG

    @property
    def ok(self) -> bool:
        return not self.errors and not self.fetches and self.plots > 0


def _run(chromium: str, args: list[str], *, timeout: float, net_log: bool = False) -> tuple[subprocess.CompletedProcess, tuple[str, ...]]:
    with tempfile.TemporaryDirectory(prefix="ffnet-nas-chromium-") as profile:
        log = Path(profile) / "net-log.json"
        extra = [f"--log-net-log={log}"] if net_log else []
        # Chromium writes its own temporary files under TMPDIR and dies ("zygote ... Broken pipe") when
        # that is unusable; Python's tempfile has already found a usable one (it made `profile` there)
        env = {**os.environ, "TMPDIR": tempfile.gettempdir()}
        proc = subprocess.run([chromium, *offline_flags(profile), *extra, *args], capture_output=True, text=True,
                              timeout=timeout, env=env)
        return proc, page_fetches(log) if net_log else ()


def page_fetches(net_log: Path) -> tuple[str, ...]:
    """Network URLs requested by a file:// page, from Chromium's net log.

    The browser's own background requests (update checks, time sync) also appear in the log;
    only requests whose network isolation key is the file:// page count as the page's.
    """
    try:
        text = net_log.read_text()
    except OSError:
        return ()
    try:
        events = json.loads(text).get("events", [])
    except ValueError:  # a log cut short when the browser exits: close it
        try:
            events = json.loads(text.rstrip().rstrip(",") + "]}").get("events", [])
        except ValueError:
            return ("<unreadable net log>",)
    urls = []
    for e in events:
        p = e.get("params") or {}
        url = p.get("url", "")
        if url.split(":", 1)[0] in ("http", "https", "ws", "wss") and "file://" in str(p.get("network_isolation_key", "")):
            urls.append(url)
    return tuple(dict.fromkeys(urls))


def console_messages(stderr: str) -> tuple[str, ...]:
    return tuple(m.group(1) for m in map(_CONSOLE.search, stderr.splitlines()) if m)


def check_page(html: str | Path, *, chromium: str | None = None, timeout: float = 90) -> PageCheck:
    """Load `html` offline, let its scripts run, return the rendered DOM and console errors."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found: install it (Debian: apt-get install chromium) or set BROWSER_PATH")
    proc, fetches = _run(chromium, ["--dump-dom", Path(html).resolve().as_uri()], timeout=timeout, net_log=True)
    console = console_messages(proc.stderr)
    errors = tuple(c for c in console if _ERROR.search(c))
    if proc.returncode != 0:
        errors += (f"chromium exited with status {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}",)
    drawn = len(_PLOT_DIV.findall(proc.stdout)) if 'class="main-svg"' in proc.stdout else 0
    return PageCheck(dom=proc.stdout, console=console, errors=errors, fetches=fetches, plots=drawn)


def screenshot(html: str | Path, png: str | Path, *, width: int, height: int, chromium: str | None = None, timeout: float = 90) -> Path:
    """A PNG of the page at width x height pixels (the viewport, from the top-left corner)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found: install it (Debian: apt-get install chromium) or set BROWSER_PATH")
    png = Path(png)
    proc, _ = _run(
        chromium,
        [f"--screenshot={png.resolve()}", f"--window-size={width},{height}", Path(html).resolve().as_uri()],
        timeout=timeout,
    )
    if proc.returncode != 0 or not png.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][-200:]
        raise InvalidInput(f"chromium could not screenshot {html} (exit {proc.returncode}: {last}); expected a working "
                           "headless Chromium and a writable TMPDIR, or ask for --format html")
    return png
