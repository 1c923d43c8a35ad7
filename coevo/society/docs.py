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


def _label(spec: RoleSpec) -> str:
    return f"{spec.name} ({spec.policy})" if spec.policy else spec.name


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
        lines.append(f"| **{_label(spec)}** | {handled or '—'} | {opens} | {all_in} | {_params(spec)} |")
    lines += ["", "| message | sent by | accepted by | what it is |", "|---|---|---|---|"]
    for message, senders, receivers in message_table():
        lines.append(
            f"| `{message}` | {', '.join(senders) or '—'} | {', '.join(receivers) or '— (stored only)'} "
            f"| {MESSAGE_DOCS[message]} |"
        )
    lines += ["", "| condition (`when:`) | holds when |", "|---|---|"]
    lines += [f"| `{name}` | {doc} |" for name, doc in PREDICATE_DOCS.items()]
    lines += ["", "| trainer `kind` | trains | what |", "|---|---|---|"]
    lines += [
        f"| `{kind.name}` | {', '.join(sorted(kind.roles))} | {kind.summary} |" for kind in TRAINERS.values()
    ]
    return "\n".join(lines)


def roles_text() -> str:
    lines = []
    for spec in all_specs():
        lines.append(f"{_label(spec)}: {spec.summary}")
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
    lines.append(f"trainer kinds: {', '.join(TRAINERS)}")
    return "\n".join(lines)


def roles_command(args: argparse.Namespace) -> int:
    print(roles_markdown() if args.markdown else roles_text())
    return 0
