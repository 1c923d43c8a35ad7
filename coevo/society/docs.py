"""`coevo roles`: the vocabulary of societies, generated from the registries the checker and the
runtime read — roles (what each handles, answers, opens, its fan-in and settings), message types
(who sends and who accepts each), edge conditions, and trainer kinds. The README's table is this
command's `--markdown` output (a test keeps them equal), so the docs cannot drift from the code."""

from __future__ import annotations

import argparse

from coevo.agents.catalog import all_specs, message_table
from coevo.agents.role import RoleSpec
from coevo.messages import MESSAGE_DOCS
from coevo.society.predicates import PREDICATE_DOCS
from coevo.trainers.registry import TRAINERS


def _params(spec: RoleSpec) -> str:
    fields = spec.params.model_fields
    return ", ".join(f"`{name}`={info.default!r}" for name, info in fields.items()) or "—"


def roles_markdown() -> str:
    lines = [
        '| role | handles → may answer with | opens episodes with | fan-in "all" on | params (default) |',
        "|---|---|---|---|---|",
    ]
    for spec in all_specs():
        handled = "; ".join(
            f"{t} → {', '.join(sorted(out)) or '(nothing)'}" for t, out in sorted(spec.handles.items())
        )
        all_in = ", ".join(sorted(t for t, a in spec.activation.items() if a == "all")) or "—"
        opens = ", ".join(sorted(spec.opens)) or "—"
        lines.append(f"| **{spec.label}** | {handled or '—'} | {opens} | {all_in} | {_params(spec)} |")
    lines += ["", "| message | sent by | accepted by | what it is |", "|---|---|---|---|"]
    for message, senders, receivers in message_table():
        lines.append(
            f"| `{message}` | {', '.join(senders) or '—'} | {', '.join(receivers) or '— (stored only)'} "
            f"| {MESSAGE_DOCS[message]} |"
        )
    lines += ["", "| condition (`when:`) | holds when |", "|---|---|"]
    lines += [f"| `{name}` | {doc} |" for name, doc in PREDICATE_DOCS.items()]
    lines += ["", f"{conditions_text('`')}", "", f"{held_text('`')}"]
    lines += ["", "| trainer `kind` | trains | what |", "|---|---|---|"]
    lines += [
        f"| `{kind.name}` | {', '.join(sorted(kind.roles))} | {kind.summary} |" for kind in TRAINERS.values()
    ]
    return "\n".join(lines)


def conditions_text(quote: str = "") -> str:
    """Which messages an edge condition can select: those their senders send with an outcome."""
    messages = sorted({m for spec in all_specs() for m in spec.outcomes})
    senders = sorted({spec.label for spec in all_specs() if spec.outcomes})
    return (
        f"A condition reads the outcome a message is sent with, and only these carry one (so only their "
        f"edges take a {quote}when{quote}): {', '.join(f'{quote}{m}{quote}' for m in messages)} "
        f"(sent by {', '.join(senders)})."
    )


def held_text(quote: str = "") -> str:
    """Which messages `deliver: next_round` may hold, by the roles they may be held for."""
    held = "; ".join(
        f"{quote}{m}{quote} for a {' or '.join(sorted(s.label for s in all_specs() if m in s.holdable))}"
        for m in sorted({m for spec in all_specs() for m in spec.holdable})
    )
    deliver = f"{quote}deliver: next_round{quote}"
    return f"A message held for the next round ({deliver}) opens an episode there: {held}."


def roles_text() -> str:
    lines = []
    for spec in all_specs():
        lines.append(f"{spec.label}: {spec.summary}")
        for message, out in sorted(spec.handles.items()):
            fan_in = " (waits for all)" if spec.activation_of(message) == "all" else ""
            lines.append(f"    {message}{fan_in} -> {', '.join(sorted(out)) or '(nothing)'}")
        if spec.opens:
            lines.append(f"    opens episodes with {', '.join(sorted(spec.opens))}")
        lines.append(f"    params: {_params(spec).replace('`', '')}")
    lines.append("")
    lines.append("messages (type: senders -> receivers):")
    for message, senders, receivers in message_table():
        lines.append(f"    {message}: {', '.join(senders)} -> {', '.join(receivers) or '(stored only)'}")
    lines.append(f"conditions: {', '.join(PREDICATE_DOCS)}")
    lines.append(conditions_text())
    lines.append(held_text())
    lines.append(f"trainer kinds: {', '.join(TRAINERS)}")
    return "\n".join(lines)


def roles_command(args: argparse.Namespace) -> int:
    print(roles_markdown() if args.markdown else roles_text())
    return 0
