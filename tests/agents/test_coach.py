"""Table-driven tests of the Coach's report parser (bad model output never raises), and its agreement
with the JSON schema engines constrain the Coach's reply to."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from coevo.agents.coach import INSTRUMENT_ITEMS, CoachReview, CoachScores, parse_coach_report

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
    # A raw newline and tab inside strings (vLLM's constrained decoding writes them): read.
    (
        '{"scores": {"explanations": 2}, "highlights": ["asked\n\twhy"], "suggestions": ["x"]}',
        {"explanations": 2.0},
        1,
        1,
        None,
    ),
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


def test_the_enforced_schema_and_the_lenient_parser_agree_on_every_item_and_scale() -> None:
    # Engines constrain the Coach's reply to CoachReview's JSON schema (CoachScores is written by
    # hand); a reply that does not validate is read by parse_coach_report, which checks against
    # INSTRUMENT_ITEMS (and the prompt is written from them). Both must take the same items on the
    # same scales, or a score one accepts is refused or dropped by the other.
    schema = CoachReview.model_json_schema()["$defs"]["CoachScores"]
    assert {k: (v["minimum"], v["maximum"]) for k, v in schema["properties"].items()} == INSTRUMENT_ITEMS
    assert set(schema["required"]) == set(INSTRUMENT_ITEMS)
    for edge in (0, 1):  # every item at its lowest, then at its highest
        scores = {item: scale[edge] for item, scale in INSTRUMENT_ITEMS.items()}
        review = CoachReview(scores=CoachScores(**scores), highlights=[], missed=[], suggestions=[])
        parsed = parse_coach_report(review.model_dump_json())
        assert parsed.parse_error is None and parsed.scores == {k: float(v) for k, v in scores.items()}
        for item, (low, high) in INSTRUMENT_ITEMS.items():
            outside = {**scores, item: high + 1 if edge else low - 1}
            with pytest.raises(ValidationError):
                CoachScores(**outside)
            parsed = parse_coach_report(json.dumps({"scores": outside}))
            assert item not in parsed.scores and f"{item} score" in (parsed.parse_error or "")


def test_a_report_cut_off_by_the_token_limit_keeps_its_scores() -> None:
    text = '{"scores": {"positive_climate": 2, "explanations": 3}, "highlights": ["the teacher has'
    fields = parse_coach_report(text)
    assert fields.scores == {"positive_climate": 2.0, "explanations": 3.0}
    assert fields.parse_error and "cut off" in fields.parse_error
