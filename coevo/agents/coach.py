"""The Coach: reads a teaching transcript and returns a structured report (Wang & Demszky,
"Is ChatGPT a Good Teacher Coach?"): (A) scores on observation-instrument items, (B) highlights
and missed opportunities, (C) suggestions that elicit more student reasoning.

The reply must be one JSON object; `parse_coach_report` is pure and never raises on bad model
output — it returns the fields it could read and a `parse_error` the caller stores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from coevo.agents.base import LLMRole

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
        data = json.loads(block)
    except json.JSONDecodeError as exc:
        return CoachFields(parse_error=f"invalid JSON: {exc.msg}")
    if not isinstance(data, dict):
        return CoachFields(parse_error="JSON is not an object")
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
    if problems:
        fields.parse_error = "; ".join(problems)
    return fields


@dataclass
class Coach(LLMRole):
    async def review(self, transcript: str) -> tuple[CoachFields, str, int, int]:
        """Score a transcript; returns the parsed fields, the raw reply and token usage."""
        system = COACH_PROMPTS[self.prompt_version]
        text, prompt_tokens, completion_tokens = await self.converse(system, transcript)
        return parse_coach_report(text), text, prompt_tokens, completion_tokens
