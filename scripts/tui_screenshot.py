"""Save an SVG screenshot of `coevo watch RUN_DIR` on one panel, headless: how the README's
docs/tui.svg was made (from a real `coevo demo` run).

    .venv/bin/python scripts/tui_screenshot.py runs/demo/seed-0 docs/tui.svg --keys m down down down
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from coevo.tui.app import CoevoApp
from coevo.tui.source import open_target


async def screenshot(run: str, keys: list[str], size: tuple[int, int]) -> str:
    target = open_target(run)
    app = CoevoApp(target)
    try:
        async with app.run_test(size=size) as pilot:
            await app.loaded.wait()
            for key in keys:
                await pilot.press(key)
                await pilot.pause(0.2)
            await pilot.pause(1.0)
            return app.export_screenshot(title=f"coevo watch {run}")
    finally:
        target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory or database URL")
    parser.add_argument("out", type=Path, help="the SVG file to write")
    parser.add_argument("--keys", nargs="*", default=["m"], help="keys to press first (default: m)")
    parser.add_argument("--size", default="160x48", help="columns x rows")
    args = parser.parse_args()
    columns, rows = (int(n) for n in args.size.split("x"))
    svg = asyncio.run(screenshot(args.run, args.keys, (columns, rows)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(svg)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
