"""Pages generated from the code, so they cannot drift from it.

The policy page, the file reference and the command reference are each
rendered by a function; this module writes such a page, or (``--check``)
says whether the committed one is out of date. Tests call :func:`stale`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def stale(page: Path, render: Callable[[], str]) -> bool:
    """Whether the committed ``page`` differs from what ``render`` makes."""
    try:
        return page.read_text(encoding="utf-8") != render()
    except OSError:
        return True


def main(
    page: Path, render: Callable[[], str], regenerate: str, description: str, argv: list[str] | None = None
) -> int:
    """The command line of a page generator: write the page, or check it."""
    parser = argparse.ArgumentParser(prog=regenerate, description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    parser.add_argument("--page", type=Path, default=page, help="where the page lives")
    args = parser.parse_args(argv)
    if args.check:
        if stale(args.page, render):
            print(f"{args.page}: out of date; run: {regenerate}", file=sys.stderr)
            return 1
        return 0
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(render(), encoding="utf-8")
    print(f"wrote {args.page}")
    return 0
