"""`coevo export`: parse the command line's filters, run the export, and report it; bad input is a
message and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from coevo.export.pipeline import ExportRequest, export_dataset
from coevo.export.selection import ZONES, Filters
from coevo.export.source import ExportError
from coevo.memory.errors import StoreError
from coevo.society.check import EXIT_INVALID


def export_command(args: argparse.Namespace) -> int:
    try:
        request = ExportRequest(
            run_dir=Path(args.run),
            kind=args.kind,
            out=Path(args.out),
            format=args.format,
            filters=filters_from(args),
            agent=args.agent,
            decontaminate=tuple(Path(p) for p in args.decontaminate),
            keep_duplicates=args.keep_duplicates,
            force=args.force,
            command=command_line(args),
        )
        report = export_dataset(request)
    except (ExportError, StoreError, OSError) as exc:  # bad input, an unusable memory, an unwritable --out
        print(f"coevo export: {exc}", file=sys.stderr)
        return EXIT_INVALID
    removed = sum(report.contaminated.values())
    print(
        f"{report.rows} {args.kind} rows written to {report.out} ({len(report.files)} data file(s) and "
        f"README.md) in {report.seconds:.1f} s; removed {report.exact_duplicates} exact and "
        f"{report.near_duplicates} near duplicates, {removed} contaminated rows"
        + (f" ({', '.join(f'{k}: {n}' for k, n in report.contaminated.items())})" if removed else "")
    )
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The export's command line, as the card quotes it."""
    words = ["coevo", "export", "--run", args.run, "--kind", args.kind, "--format", args.format]
    words += ["--out", args.out]
    for option in ("rounds", "zones", "skills", "success", "policy", "as_of_round", "agent"):
        value = getattr(args, option)
        if value is not None:
            words += [f"--{option.replace('_', '-')}", str(value)]
    for path in args.decontaminate:
        words += ["--decontaminate", path]
    words += ["--keep-duplicates"] * args.keep_duplicates
    return shlex.join(words)


def filters_from(args: argparse.Namespace) -> Filters:
    """The filters of the command line, checked; ExportError naming the option otherwise."""
    zones = _names(args.zones)
    if zones is not None and not zones <= set(ZONES):
        unknown = ", ".join(sorted(zones - set(ZONES)))
        raise ExportError(f"--zones: unknown zone {unknown}; zones are {', '.join(ZONES)}")
    return Filters(
        rounds=_rounds(args.rounds),
        as_of_round=_non_negative("--as-of-round", args.as_of_round),
        skills=_names(args.skills),
        zones=zones,
        success=_success(args.success),
        policies=_names(args.policy),
    )


def _names(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ExportError(f"empty list {text!r}: give names separated by commas")
    return names


def _non_negative(option: str, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise ExportError(f"{option} must be a round number (0 or more), got {value}")
    return value


def _rounds(text: str | None) -> range | None:
    if text is None:
        return None
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise ExportError(f"--rounds {text!r}: expected a round R or a range A-B, e.g. 0-3") from None
    if not 0 <= first <= last:
        raise ExportError(f"--rounds {text!r}: expected 0 <= A <= B")
    return range(first, last + 1)


def _success(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    low, sep, high = text.partition("-")
    try:
        bounds = (float(low), float(high))
    except ValueError:
        bounds = None
    if not sep or bounds is None or not 0.0 <= bounds[0] <= bounds[1] <= 1.0:
        raise ExportError(f"--success {text!r}: expected MIN-MAX with 0 <= MIN <= MAX <= 1, e.g. 0.2-0.8")
    return bounds
