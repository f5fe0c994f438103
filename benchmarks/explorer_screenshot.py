"""Take a screenshot of a run's explorer page in headless Chromium (for the README).

python benchmarks/explorer_screenshot.py RUN/explorer.html docs/explorer.png [--unit N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from rnnlab.viz.browser import launch_chromium


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--unit", help="unit to show (default: the page's initial choice)")
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1100, "height": 820})
        page.goto(args.page.resolve().as_uri())
        if args.unit:
            page.select_option("#unit", args.unit)
        page.hover("#text span.ch >> nth=120")
        page.screenshot(path=str(args.png))
        browser.close()
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
