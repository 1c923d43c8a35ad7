"""The Coach: reads a teaching transcript and returns a structured report (Wang & Demszky,
"Is ChatGPT a Good Teacher Coach?"): (A) scores on observation-instrument items, (B) highlights
and missed opportunities, (C) suggestions that elicit more student reasoning.

In a society the Coach waits for the episode's teaching to finish (fan-in "all" on everything it
accepts), reads the messages delivered to it as the transcript, and sends a `CoachReport` whose
`transcript_ids` are those messages' ids. It runs as an autogen agent with the report's pydantic
model as `output_content_type` (engines that can, constrain decoding to its JSON schema); a reply
that does not validate is read leniently by `parse_coach_report`, which never raises — it keeps
the fields it could read and a `parse_error` stored with the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from coevo.agents.base import LLMRole
from coevo.agents.registry import register_role
from coevo.agents.role import Context
from coevo.messages import (
    AttemptGraded,
    CoachReport,
    ExamResult,
    Explanation,
    ExplanationScored,
    Message,
    ProblemPosed,
    SolutionSubmitted,
    Usage,
)

# Instrument items and their scales: CLASS items 1–7, MQI items 1–3 (the paper's instruments).
INSTRUMENT_ITEMS: dict[str, tuple[int, int]] = {
    "positive_climate": (1, 7),
    "behavior_management": (1, 7),
    "instructional_dialogue": (1, 7),
    "explanations": (1, 3),
    "remediation_of_student_errors": (1, 3),
    "imprecise_language": (1, 3),
    "student_questioning_and_reasoning": (1, 3),
}

COACH_PROMPTS: dict[str, str] = {
    "v1": (
        "You are an instructional coach for mathematics teachers. Read the teaching transcript and "
        "reply with ONE JSON object and nothing else, with keys:\n"
        '"scores": an object scoring these items (integers): '
        + ", ".join(f'"{k}" ({lo}-{hi})' for k, (lo, hi) in INSTRUMENT_ITEMS.items())
        + ';\n"highlights": list of strings, moments where the teacher elicited student reasoning;\n'
        '"missed": list of strings, missed opportunities to press for reasoning;\n'
        '"suggestions": list of strings, concrete moves the teacher has NOT already made.'
    ),
}

MAX_REPORT_CHARS = 20000


@dataclass
class CoachFields:
    scores: dict[str, float] = field(default_factory=dict)
    highlights: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    parse_error: str | None = None


def _first_json_object(text: str) -> str | None:
    """The first balanced {...} block, skipping braces inside JSON strings."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return []


def parse_coach_report(text: str) -> CoachFields:
    if not text or not text.strip():
        return CoachFields(parse_error="empty output")
    block = _first_json_object(text[:MAX_REPORT_CHARS])
    if block is None:
        return CoachFields(parse_error="no JSON object in output")
    try:
        # strict=False: raw control characters (a newline, a tab) inside strings are read. JSON
        # forbids them, but vLLM's constrained decoding lets them into the schema's strings
        # (tests/engines/test_vllm_engine.py), and the rest of such a report is sound.
        data = json.loads(block, strict=False)
    except json.JSONDecodeError as exc:
        return CoachFields(parse_error=f"invalid JSON: {exc.msg}")
    if not isinstance(data, dict):
        return CoachFields(parse_error="JSON is not an object")
    # A report cut off by the token limit leaves its inner "scores" object as the first whole one.
    truncated = not data.keys() & {"scores", "highlights", "missed", "suggestions"} and bool(
        data.keys() & INSTRUMENT_ITEMS.keys()
    )
    if truncated:
        data = {"scores": data}
    fields = CoachFields(
        highlights=_strings(data.get("highlights")),
        missed=_strings(data.get("missed")),
        suggestions=_strings(data.get("suggestions")),
    )
    problems: list[str] = []
    raw_scores = data.get("scores")
    if isinstance(raw_scores, dict):
        for item, value in raw_scores.items():
            if item not in INSTRUMENT_ITEMS:
                problems.append(f"unknown item {item!r}")
                continue
            try:
                score = float(value)
            except (TypeError, ValueError):
                problems.append(f"non-numeric score for {item}")
                continue
            lo, hi = INSTRUMENT_ITEMS[item]
            if not lo <= score <= hi:
                problems.append(f"{item} score {score:g} outside {lo}-{hi}")
                continue
            fields.scores[item] = score
    elif raw_scores is not None:
        problems.append("'scores' is not an object")
    if truncated:
        problems.insert(0, "output cut off before the report ended; only the scores were read")
    if problems:
        fields.parse_error = "; ".join(problems)
    return fields


class CoachScores(BaseModel):
    positive_climate: int = Field(ge=1, le=7)
    behavior_management: int = Field(ge=1, le=7)
    instructional_dialogue: int = Field(ge=1, le=7)
    explanations: int = Field(ge=1, le=3)
    remediation_of_student_errors: int = Field(ge=1, le=3)
    imprecise_language: int = Field(ge=1, le=3)
    student_questioning_and_reasoning: int = Field(ge=1, le=3)


# Short, few items: the schema bounds them, so constrained decoding (compact JSON) closes the object
# inside the token budget instead of running into it mid-list: 9 notes of at most 120 characters
# (about 30 tokens each), 7 scores and the keys make about 400 tokens at most, inside the 512 that
# configs/coach.yaml gives the Coach.
Note = Annotated[str, StringConstraints(max_length=120)]
Notes = Annotated[list[Note], Field(max_length=3)]


class CoachReview(BaseModel):
    """The Coach's structured output (its JSON schema is what the engine constrains decoding to)."""

    scores: CoachScores
    highlights: Notes
    missed: Notes
    suggestions: Notes


MAX_TRANSCRIPT_CHARS = 6000


def transcript(messages: Sequence[Message]) -> str:
    """The messages of a teaching episode as a transcript the Coach reads, in the order given."""
    lines: list[str] = []
    for m in messages:
        if isinstance(m, ProblemPosed):
            lines.append(f"{m.sender} (teacher) poses: {m.question}")
        elif isinstance(m, Explanation):
            lines.append(f'{m.sender} (teacher) explains "{m.question}":\n{m.rationale.strip()[:1500]}')
        elif isinstance(m, ExamResult):
            answers = ", ".join("-" if a is None else a for a in m.answers[:9])
            lines.append(f"{m.sender} (student) exam: {m.correct}/{m.total} correct (answers: {answers})")
        elif isinstance(m, SolutionSubmitted):
            lines.append(f"{m.sender} (student) answers: {m.response.strip()[:500]}")
        elif isinstance(m, AttemptGraded):
            verdict = ("correct" if m.correct else f"incorrect ({m.failure})") if m.graded else "ungraded"
            lines.append(f"{m.sender} (teacher) grades {m.solver}'s attempt {m.attempt_index}: {verdict}")
        elif isinstance(m, ExplanationScored):
            lines.append(f"{m.sender} (teacher): the explanation's students scored {m.lbt_score:.0%}")
    return "\n".join(lines)[:MAX_TRANSCRIPT_CHARS]


# What a teaching transcript is made of (the Coach waits for all of it).
TRANSCRIPT_TYPES = (
    "ProblemPosed",
    "SolutionSubmitted",
    "AttemptGraded",
    "Explanation",
    "ExamResult",
    "ExplanationScored",
)


@register_role(
    "coach",
    summary="Waits for an episode's teaching to end, reviews it as a transcript and returns a "
    "structured report (instrument scores, highlights, missed opportunities, suggestions).",
    handles={t: {"CoachReport"} for t in TRANSCRIPT_TYPES},
    activation=dict.fromkeys(TRANSCRIPT_TYPES, "all"),
    prompts=COACH_PROMPTS,
)
class Coach(LLMRole):
    async def handle(self, ctx: Context, inbox: Sequence[Message]) -> None:
        text = transcript(inbox)
        if not text:
            return
        reply = await self.converse(
            COACH_PROMPTS[self.prompt_version], text, seed=ctx.seed(), output_type=CoachReview
        )
        if reply.value is not None:
            review = reply.value
            fields = CoachFields(
                scores={k: float(v) for k, v in review.scores.model_dump().items()},
                highlights=_strings(review.highlights),
                missed=_strings(review.missed),
                suggestions=_strings(review.suggestions),
            )
        else:
            fields = parse_coach_report(reply.text)
            fields.parse_error = fields.parse_error or reply.error
        ctx.emit(
            CoachReport(
                transcript_ids=[m.id for m in inbox],
                scores=fields.scores,
                highlights=fields.highlights,
                missed=fields.missed,
                suggestions=fields.suggestions,
                raw=reply.text[:MAX_REPORT_CHARS],
                parse_error=fields.parse_error,
                usage=Usage(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens),
            )
        )
