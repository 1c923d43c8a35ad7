"""Parsing a model-written problem ("Problem: ... Answer: ...") — shared by the LLM Teacher's
refinements and the Generator's proposals. Pure functions: a malformed draft is a `DraftError`
with a reason, which the caller records as a failure (the raw text is kept)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Long outputs are noise for a problem draft; cap what we scan so 10k tokens of junk stays cheap.
MAX_DRAFT_CHARS = 8000
MAX_QUESTION_CHARS = 2000

# A section header on its own line: "Problem:", "**Problem:**", "New problem:", ... The trailing
# whitespace match stops at the line end so an empty section still leaves the next header's newline.
_PROBLEM = re.compile(
    r"(?:^|\n)[ \t]*\**(?:new\s+)?(?:problem|question)\**[ \t]*[:：]\**[ \t]*", re.IGNORECASE
)
_ANSWER = re.compile(r"(?:^|\n)[ \t]*\**(?:final\s+)?answer\**[ \t]*[:：]\**[ \t]*", re.IGNORECASE)
_SOLUTION = re.compile(r"(?:^|\n)[ \t]*\**solution\**[ \t]*[:：]\**[ \t]*", re.IGNORECASE)


class DraftError(ValueError):
    """A draft that cannot be used; `str()` is the short reason stored with the failure."""


@dataclass(frozen=True)
class ProblemDraft:
    question: str
    answer: str
    solution: str | None = None


def parse_problem_draft(text: str) -> ProblemDraft:
    """Extract `Problem:`, optional `Solution:` and `Answer:` sections from a model's reply."""
    if not text or not text.strip():
        raise DraftError("empty output")
    text = text[:MAX_DRAFT_CHARS]
    problem_match = _PROBLEM.search(text)
    if problem_match is None:
        raise DraftError("no 'Problem:' section")
    answer_match = _ANSWER.search(text, problem_match.end())
    if answer_match is None:
        raise DraftError("no 'Answer:' section after the problem")
    solution_match = _SOLUTION.search(text, problem_match.end(), answer_match.start())
    question_end = solution_match.start() if solution_match else answer_match.start()
    question = text[problem_match.end() : question_end].strip()
    solution = text[solution_match.end() : answer_match.start()].strip() if solution_match else None
    answer_line = text[answer_match.end() :].strip().splitlines()
    answer = answer_line[0].strip().rstrip(".").strip("*$ ") if answer_line else ""
    if not question:
        raise DraftError("empty problem text")
    if len(question) > MAX_QUESTION_CHARS:
        raise DraftError(f"problem text longer than {MAX_QUESTION_CHARS} characters")
    if not answer:
        raise DraftError("empty answer")
    return ProblemDraft(question=question, answer=answer, solution=solution or None)
