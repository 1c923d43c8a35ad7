"""Table-driven tests of the Coach's report parser: bad model output never raises."""

from __future__ import annotations

import pytest

from coevo.agents.coach import COACH_PROMPTS, INSTRUMENT_ITEMS, parse_coach_report

FULL = (
    '{"scores": {"positive_climate": 6, "explanations": 2}, "highlights": ["asked why"],'
    ' "missed": ["did not revoice"], "suggestions": ["ask the student to explain {x}"]}'
)

CASES = [
    # (output, scores, n_highlights, n_suggestions, parse_error prefix or None)
    (FULL, {"positive_climate": 6.0, "explanations": 2.0}, 1, 1, None),
    (
        "Here is my report:\n```json\n" + FULL + "\n```",
        {"positive_climate": 6.0, "explanations": 2.0},
        1,
        1,
        None,
    ),
    ("", {}, 0, 0, "empty output"),
    ("I think the lesson went well.", {}, 0, 0, "no JSON object"),
    ('{"scores": {"positive_climate": 6,}', {}, 0, 0, "invalid JSON"),
    ('{"scores": [1, 2]}', {}, 0, 0, "'scores' is not an object"),
    ('{"scores": {"positive_climate": 9}}', {}, 0, 0, "positive_climate score 9 outside 1-7"),
    ('{"scores": {"explanations": "high"}}', {}, 0, 0, "non-numeric score"),
    ('{"scores": {"charisma": 3, "explanations": 3}}', {"explanations": 3.0}, 0, 0, "unknown item"),
    ('{"highlights": "one moment", "suggestions": ["", "x"]}', {}, 1, 1, None),
    ("{" * 5000, {}, 0, 0, "no JSON object"),
    ('[1, 2] {"scores": {}}', {}, 0, 0, None),
]


@pytest.mark.parametrize(("text", "scores", "highlights", "suggestions", "error"), CASES)
def test_parse_coach_report(
    text: str, scores: dict[str, float], highlights: int, suggestions: int, error: str | None
) -> None:
    report = parse_coach_report(text)
    assert report.scores == scores
    assert len(report.highlights) == highlights
    assert len(report.suggestions) == suggestions
    if error is None:
        assert report.parse_error is None
    else:
        assert report.parse_error is not None and report.parse_error.startswith(error)


def test_prompt_names_every_item() -> None:
    for item in INSTRUMENT_ITEMS:
        assert item in COACH_PROMPTS["v1"]


def test_a_report_cut_off_by_the_token_limit_keeps_its_scores() -> None:
    text = '{"scores": {"positive_climate": 2, "explanations": 3}, "highlights": ["the teacher has'
    fields = parse_coach_report(text)
    assert fields.scores == {"positive_climate": 2.0, "explanations": 3.0}
    assert fields.parse_error and "cut off" in fields.parse_error
