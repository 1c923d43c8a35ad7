"""Answer extraction from model output, and verification against a reference answer.

The verdict always comes from the *extracted* answer and the reference, never from anything
the response says about itself ("the answer is correct" carries no weight: it has no number).

Extraction priority: the last `\\boxed{...}` (nested braces), then `#### x`, then the last
"the answer is x" / "answer: x", then the last number in the text. Only the tail of a long
response is scanned, so a 100 KB output costs the same as a short one.

Percent rule: a percent sign is a unit and is dropped, so "50%" extracts as "50" and equals a
reference of "50" (questions ask "what percent", and references are stated in percent units),
but not "0.5". Units (`\\text{...}`, trailing words), `$`, and thousands separators are dropped.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

# Answers sit at the end of a response; scanning only the tail bounds the regex work.
TAIL_CHARS = 4000
# math-verify's timeouts are disabled (they use signals, which fail off the main thread), so
# its input is bounded instead: longer expressions are not handed to sympy.
MAX_SYMBOLIC_CHARS = 300

_NUMBER = r"[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|[-−]?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_MARKERS = (
    re.compile(r"####"),
    re.compile(
        r"the\s+(?:final\s+)?answer(?:\s+to\s+[^.\n]{1,40}?)?\s+is|final\s+answer\s*[:=]|answer\s*[:=]",
        re.IGNORECASE,
    ),
)
_TEXT_RE = re.compile(r"\\(?:text|mathrm|textbf|mbox)\{[^{}]*\}")
_LATEX_FRAC_RE = re.compile(r"^\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}$")
_LATEX_MARKERS = ("\\frac", "\\dfrac", "\\tfrac", "\\sqrt", "\\pi", "^", "\\cdot", "\\infty")


@dataclass(frozen=True)
class Grade:
    extracted: str | None
    correct: bool
    reward: float
    # A short reason for a failure ("empty", "no answer found", "wrong answer"); None when correct.
    failure: str | None


def normalize_digits(text: str) -> str:
    """NFKC (full-width forms) and every Unicode decimal digit (Arabic-Indic, Devanagari, ...) → ASCII."""
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():
        return text
    return "".join(str(d) if (d := unicodedata.decimal(ch, None)) is not None else ch for ch in text)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}`, honouring nested braces."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None  # unbalanced: the box was cut off (e.g. max_tokens)


def clean_answer(raw: str) -> str | None:
    """Strip units, `$`, `%`, thousands separators and prose around an answer; None when nothing is left.

    A LaTeX expression is kept as LaTeX (math-verify compares it); otherwise the first number
    in the text is the answer ("42 apples." → "42").
    """
    s = _TEXT_RE.sub("", raw)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "").replace("\\!", "")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\left", "").replace("\\right", "")
    s = s.strip().rstrip(".").strip()
    if "=" in s:  # "the answer is 3 + 2 = 5": the result is what follows the last "="
        s = s.rsplit("=", 1)[1]
    if any(marker in s for marker in _LATEX_MARKERS) and re.search(r"\d|\\pi|\\infty", s):
        return re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    match = _NUMBER_RE.search(s)
    if match is None:
        return None
    return match.group(0).replace(",", "").replace("−", "-").replace(" ", "")


def extract_answer(text: str | None) -> str | None:
    """The model's final answer as a clean string, or None when the response has none."""
    if not text or not text.strip():
        return None
    tail = normalize_digits(text[-TAIL_CHARS:])
    boxed = last_boxed(tail)
    if boxed is not None and (answer := clean_answer(boxed)) is not None:
        return answer
    for marker in _MARKERS:
        # Each claim runs to the next claim or the end of its line, so the last claim wins.
        matches = list(marker.finditer(tail))
        for i in reversed(range(len(matches))):
            end = matches[i].end()
            stop = matches[i + 1].start() if i + 1 < len(matches) else len(tail)
            line_end = tail.find("\n", end)
            segment = tail[end : stop if line_end < 0 else min(stop, line_end)]
            if (answer := clean_answer(segment)) is not None:
                return answer
    numbers = _NUMBER_RE.findall(tail)
    if not numbers:
        return None
    return numbers[-1].replace(",", "").replace("−", "-").replace(" ", "")


def as_fraction(value: str) -> Fraction | None:
    """An exact number from "12", "-3.5", "1,000", "3/4" or "\\frac{3}{4}"; None for anything else."""
    s = value.strip().replace(",", "").replace("−", "-").replace(" ", "")
    latex = _LATEX_FRAC_RE.match(s)
    if latex is not None:
        s = f"{latex.group(1)}/{latex.group(2)}"
    if not re.fullmatch(r"-?(?:\d+(?:\.\d+)?|\.\d+)(?:/-?\d+)?", s):
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def verify(extracted: str | None, reference: str) -> bool:
    """Whether an extracted answer equals the reference: exact rational comparison when both are
    numbers, math-verify (symbolic) otherwise."""
    if extracted is None:
        return False
    reference_clean = clean_answer(normalize_digits(reference)) or reference.strip()
    ours, theirs = as_fraction(extracted), as_fraction(reference_clean)
    if ours is not None and theirs is not None:
        return ours == theirs
    if max(len(extracted), len(reference_clean)) > MAX_SYMBOLIC_CHARS:
        return extracted.strip() == reference_clean
    return _symbolic_equal(extracted, reference_clean)


def _symbolic_equal(extracted: str, reference: str) -> bool:
    from math_verify import parse
    from math_verify import verify as mv_verify

    # We disable its signal-based timeouts on purpose (inputs are bounded above); silence the
    # warning it logs about that on every call.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    try:
        gold = parse(f"${reference}$", parsing_timeout=None)
        target = parse(f"${extracted}$", parsing_timeout=None)
        if not gold or not target:
            return extracted.strip() == reference.strip()
        return bool(mv_verify(gold, target, timeout_seconds=None))
    except Exception:  # sympy raises many types on odd input; an unparseable answer is wrong
        return False


def grade(response: str | None, reference: str) -> Grade:
    """Extract and verify; reward is 1.0 for a correct answer and 0.0 otherwise."""
    if not response or not response.strip():
        return Grade(extracted=None, correct=False, reward=0.0, failure="empty")
    extracted = extract_answer(response)
    if extracted is None:
        return Grade(extracted=None, correct=False, reward=0.0, failure="no answer found")
    correct = verify(extracted, reference)
    return Grade(extracted, correct, 1.0 if correct else 0.0, None if correct else "wrong answer")
