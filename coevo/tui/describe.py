"""How an event reads to a person: a one-line summary for lists, the fields and full texts of its
detail view, the words a search looks through, and its verdict (correct or not) where it has one.

Shared by the TUI and `coevo show`; no textual here. Everything returned is plain text that may
hold model output: callers pass it through `coevo.tui.text` before showing it.
"""

from __future__ import annotations

from collections.abc import Callable

from coevo.messages import (
    AdapterLoaded,
    AttemptGraded,
    CoachReport,
    Demonstration,
    EvalFinished,
    Event,
    ExamResult,
    Explanation,
    ExplanationScored,
    ProblemPosed,
    ProblemProposed,
    ProblemRefined,
    ProposalReviewed,
    RoundFinished,
    RoundStarted,
    RunFinished,
    SolutionSubmitted,
    TrainingFinished,
    TrainingStarted,
    TrainingStep,
    accuracy_text,
)

Fields = list[tuple[str, str]]


def _metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.4g}" for key, value in sorted(metrics.items()))


def summary(event: Event) -> str:
    """One line about the event (before `one_line` cuts it to a width)."""
    match event:
        case ProblemPosed():
            return event.question
        case SolutionSubmitted():
            return f"#{event.attempt_index} {event.response}"
        case AttemptGraded():
            if not event.graded:
                return (
                    f"#{event.attempt_index} ungraded ({event.failure}): {event.detail or 'no cause given'}"
                )
            failure = f" ({event.failure})" if event.failure else ""
            verdict = "correct" if event.correct else "wrong"
            answer = f"answer {event.extracted_answer}, reward {event.reward:.2f}"
            return f"#{event.attempt_index} {verdict}: {answer}{failure}"
        case ProblemRefined():
            return (
                f"{event.parent_problem_id} → {event.problem_id} ({event.zone}, "
                f"{event.success_rate:.0%}) {event.question}"
            )
        case Demonstration():
            return f"{event.source_problem_id} → {event.target_problem_id}: {event.target_question}"
        case ProblemProposed():
            return event.question or f"unreadable: {event.parse_error}"
        case ProposalReviewed():
            return "accepted" if event.accepted else f"rejected: {event.reason}"
        case Explanation():
            return event.rationale
        case ExamResult():
            ungraded = f", {event.ungraded} ungraded" if event.ungraded else ""
            return f"{event.correct}/{event.total} on the exam of {event.explanation_id}{ungraded}"
        case ExplanationScored():
            verdict = ("correct" if event.correct else "wrong") if event.graded else "ungraded"
            return (
                f"{verdict}, LbT {event.lbt_score:.2f}, score {event.score:.2f} ({event.students} students)"
            )
        case CoachReport():
            return event.parse_error or _metrics(event.scores) or event.raw
        case RoundStarted():
            return f"{event.episodes} episodes"
        case RoundFinished():
            return (
                f"{accuracy_text(event.correct, event.attempts, event.ungraded)}, "
                f"{event.tokens} tokens in {event.seconds:.1f} s"
            )
        case TrainingStarted():
            return f"{event.agent} with {event.trainer} on {event.examples} examples"
        case TrainingStep():
            return f"{event.agent} step {event.step}/{event.max_steps}: {_metrics(event.metrics)}"
        case TrainingFinished():
            if not event.ok:
                return f"{event.agent} failed: {event.error}"
            return f"{event.agent} → {event.new_version}: {_metrics(event.metrics)}"
        case AdapterLoaded():
            return f"{event.agent} now serves {event.version}"
        case EvalFinished():
            return (
                f"{event.agent} {event.policy} on {event.dataset}: {event.accuracy:.1%} "
                f"[{event.ci_low:.1%}, {event.ci_high:.1%}] n={event.n}"
            )
        case RunFinished():
            return f"{event.rounds} rounds"
    return ""


def texts(event: Event) -> Fields:
    """The event's long texts (model output, questions), each with its label."""
    match event:
        case ProblemPosed() | ProblemProposed() if event.question:
            found = [("question", event.question)]
            if isinstance(event, ProblemProposed) and event.raw:
                found.append(("raw output", event.raw))
            return found
        case ProblemProposed():
            return [("raw output", event.raw)]
        case SolutionSubmitted():
            return [("response", event.response)]
        case ProblemRefined():
            return [("question", event.question)]
        case Demonstration():
            return [("failed response", event.failed_response), ("refined question", event.target_question)]
        case ProposalReviewed():
            return [("reason", event.reason)]
        case Explanation():
            exam = "\n".join(f"{item.problem_id}: {item.question}" for item in event.exam)
            return [("question", event.question), ("rationale", event.rationale), ("exam", exam)]
        case CoachReport():
            return [
                ("highlights", "\n".join(event.highlights)),
                ("missed", "\n".join(event.missed)),
                ("suggestions", "\n".join(event.suggestions)),
                ("raw output", event.raw),
            ]
        case TrainingFinished() if event.error:
            return [("error", event.error)]
    return []


def fields(event: Event, grade: AttemptGraded | None = None) -> Fields:
    """Short facts about the event for its detail view; `grade` is the verdict on an attempt."""
    found: Fields = []
    match event:
        case ProblemPosed():
            found = [("problem", event.problem_id), ("skills", ", ".join(event.skills))]
            found += [("difficulty", ", ".join(f"{k} {v:g}" for k, v in sorted(event.difficulty.items())))]
        case SolutionSubmitted():
            found = [("problem", event.problem_id), ("attempt", str(event.attempt_index))]
            found += [("finish reason", event.finish_reason)]
        case AttemptGraded():
            found = [("problem", event.problem_id), ("attempt", str(event.attempt_index))]
            found += [("solver", event.solver)]
            grade = event
        case ProblemRefined():
            found = [("parent", event.parent_problem_id), ("problem", event.problem_id)]
            found += [
                ("answer", event.answer),
                ("zone", event.zone),
                ("success rate", f"{event.success_rate:.0%}"),
            ]
        case ProblemProposed():
            found = [("from problem", event.source_problem_id), ("answer", event.answer)]
            found += [("parse error", event.parse_error or "none")]
        case ProposalReviewed():
            found = [("proposal", event.proposal_id), ("accepted", "yes" if event.accepted else "no")]
        case Explanation():
            found = [("problem", event.problem_id), ("answer", str(event.answer))]
        case ExamResult():
            found = [("explanation", event.explanation_id), ("score", f"{event.correct}/{event.total}")]
            found += [("answers", ", ".join(str(a) for a in event.answers))]
        case ExplanationScored():
            found = [("explanation", event.explanation_id), ("correct", "yes" if event.correct else "no")]
            found += [("LbT score", f"{event.lbt_score:.3f}"), ("score", f"{event.score:.3f}")]
        case CoachReport():
            found = [("scores", _metrics(event.scores)), ("parse error", event.parse_error or "none")]
        case TrainingFinished():
            found = [("result", summary(event)), ("trainer", event.trainer)]
        case AdapterLoaded():
            found = [("path", event.path)]
        case RoundFinished():
            found = [("result", summary(event)), ("metrics", _metrics(event.metrics))]
            found += [("per skill", _metrics(event.per_skill))]
        case _:
            found = [("summary", summary(event))]
    if grade is not None:
        found += [
            ("extracted answer", str(grade.extracted_answer)),
            ("grade", ("correct" if grade.correct else "incorrect") if grade.graded else "ungraded"),
            ("reward", f"{grade.reward:g}"),
            ("failure", grade.failure or "none"),
            ("why ungraded", grade.detail or ""),
        ]
    return [(label, value) for label, value in found if value]


def searchable(event: Event) -> str:
    """Lower-cased words a search matches: who, what type, the summary and the long texts."""
    parts = [event.type, event.sender, *event.recipients, summary(event), *(text for _, text in texts(event))]
    return "\n".join(parts).lower()


def verdict(event: Event, grade_of: Callable[[SolutionSubmitted], AttemptGraded | None]) -> bool | None:
    """Whether the event is a success (a correct attempt, an accepted proposal, a correct
    explanation); None for events without a verdict or an attempt not graded yet."""
    match event:
        case AttemptGraded() | ExplanationScored():
            return event.correct if event.graded else None
        case ProposalReviewed():
            return event.accepted
        case SolutionSubmitted():
            grade = grade_of(event)
            return None if grade is None or not grade.graded else grade.correct
    return None
