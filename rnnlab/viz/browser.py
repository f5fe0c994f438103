"""Headless Chromium for looking at rnnlab's pages: Debian's ``chromium`` driven by playwright.

Used by the explorer's browser test and by ``benchmarks/explorer_screenshot.py``; nothing in the
library needs it at run time.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
# quiet, offline, sandbox-free (containers): the page must work with no network at all
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def launch_chromium(playwright):
    """A headless Chromium browser from a ``sync_playwright()`` context."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
