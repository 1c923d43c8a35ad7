"""`coevo show`: a run's events as text or JSON lines, without a UI (for scripts, CI logs and pipes).

It reads through the journal's cursor like the TUI, and prints model output inert: control
characters appear as escapes (`\\x1b[31m`), so a message cannot drive the reader's terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Iterable, Iterator

from coevo.memory.journal import EventCursor, JournalEntry
from coevo.messages import LIFECYCLE_TYPES, MESSAGE_TYPES
from coevo.tui.describe import fields, texts
from coevo.tui.source import PAGE_ROWS, TargetError, open_target
from coevo.tui.text import inert, one_line

EXIT_INVALID = 2
EVENT_TYPES = MESSAGE_TYPES | LIFECYCLE_TYPES


def _entries(cursor: EventCursor) -> Iterator[JournalEntry]:
    while batch := cursor.poll(PAGE_ROWS):
        yield from batch


def _indented(text: str) -> str:
    return "\n".join(f"    {line}" for line in inert(text).splitlines() or [""])


def format_entry(entry: JournalEntry, last_committed: int) -> str:
    event = entry.event
    to = ", ".join(event.recipients) or "(stored)"
    episode = "-" if event.episode is None else str(event.episode)
    head = (
        f"#{entry.row_id} round {event.round} episode {episode}  {event.sender or '-'} → {to}  {event.type}"
    )
    if event.policy_version:
        head += f"  [{event.policy_version}]"
    if entry.provisional and event.round > last_committed:
        head += "  (provisional)"
    lines = [
        inert(head),
        "  " + one_line("; ".join(f"{label}: {value}" for label, value in fields(event))),
    ]
    for label, text in texts(event):
        if text:
            lines += [f"  {label}:", _indented(text)]
    return "\n".join(lines)


def _check(args: argparse.Namespace, agents: Iterable[str]) -> str | None:
    """What is wrong with the filters, if anything."""
    unknown = sorted(set(args.types) - EVENT_TYPES)
    if unknown:
        return f"unknown type {', '.join(unknown)} (types: {', '.join(sorted(EVENT_TYPES))})"
    known = sorted({*agents, "scheduler", "trainer"})
    if args.agent is not None and args.agent not in known:
        return f"no agent {args.agent!r} in this run (agents: {', '.join(known)})"
    if args.round is not None and args.round < 0:
        return "--round must be 0 or more"
    if args.limit is not None and args.limit < 1:
        return "--limit must be 1 or more"
    return None


def show_command(args: argparse.Namespace) -> int:
    try:
        target = open_target(args.run, args.run_id)
    except TargetError as exc:
        print(f"coevo show: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        store, run_id = target.store, target.run_id
        problem = _check(args, (agent.name for agent in store.agents(run_id)))
        if problem is not None:
            print(f"coevo show: {problem}", file=sys.stderr)
            return EXIT_INVALID
        last_committed = store.last_committed_round(run_id)
        cursor = EventCursor(store, run_id, types=args.types or None)
        chosen: Iterable[JournalEntry] = (
            entry
            for entry in _entries(cursor)
            if (args.round is None or entry.event.round == args.round)
            and (args.agent is None or args.agent in (entry.event.sender, *entry.event.recipients))
        )
        if args.limit is not None:
            chosen = deque(chosen, maxlen=args.limit)
        for entry in chosen:
            if args.json:
                record = {"row": entry.row_id, "provisional": entry.provisional}
                print(json.dumps(record | entry.event.model_dump(mode="json")))
            else:
                print(format_entry(entry, last_committed))
        return 0
    finally:
        target.close()
