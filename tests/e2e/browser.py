"""Headless Chromium for the report test: Debian's ``chromium`` package, installed on first use.

A fresh CI machine has no browser; ``.ci/run`` runs as root with apt-get, so the fixture installs it there
(about 2 minutes on the shared machine, most of it download and unpacking). Elsewhere install it yourself:
``sudo apt-get install chromium``. The flags are the ones this machine's closed network needs: without the
background-networking ones Chromium keeps trying to reach Google's hosts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserUnavailableError(RuntimeError):
    pass


def _install() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserUnavailableError(
            "the report test needs Debian's chromium: `sudo apt-get install chromium` (CI installs it)"
        )
    command = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    started = time.monotonic()
    if subprocess.run(command, env=environment, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=environment, capture_output=True, check=True)
        subprocess.run(command, env=environment, capture_output=True, check=True)
    print(f"browser: installed chromium in {time.monotonic() - started:.0f} s")


def chromium() -> str:
    """The Chromium executable, installed first if missing."""
    found = shutil.which("chromium")
    if found is None:
        _install()
        found = shutil.which("chromium")
    if found is None:
        raise BrowserUnavailableError("apt-get installed chromium, but it is not on the PATH")
    return found


def dump_dom(executable: str, page: Path, profile: Path) -> str:
    """Load `page` in headless Chromium and return the document as Chromium parsed it."""
    done = subprocess.run(
        [executable, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout
