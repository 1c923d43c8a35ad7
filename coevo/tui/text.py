"""Model output as inert text. Whatever an agent wrote is shown as the characters it contains: never
interpreted as Rich markup (the UI hands widgets `rich.text.Text` built from plain strings, not
markup strings) and never as terminal control sequences (this module makes every control
character visible as an escape before the text reaches a screen or a terminal).

No textual here: `coevo show` uses it too, and it must start instantly.
"""

from __future__ import annotations

import re

# C0 controls except newline and tab, DEL, C1 controls (ESC, CSI and OSC introducers among them),
# and the bidirectional overrides and isolates, which can make a terminal show text out of order.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
TAB = "    "


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str) -> str:
    """`text` with every control character written as an escape (`\\x1b`), tabs as spaces;
    newlines are kept."""
    return _CONTROL.sub(_escape, text.replace("\t", TAB))


def one_line(text: str, width: int | None = None) -> str:
    """`text` on one line (runs of whitespace as one space), inert, cut to `width` with an ellipsis."""
    flat = inert(_SPACES.sub(" ", text).strip())
    if width is not None and len(flat) > width:
        return flat[: max(width - 1, 0)] + "…"
    return flat
