"""`RoundBatch`: the rows one round derives (problems, attempts, skill profiles, run state),
collected in memory until `Store.commit_round` writes them in one transaction with the round's
commit mark. A running society journals its events as they happen (coevo.memory.journal, marked
provisional) and the same transaction confirms them; events added to the batch itself (tests,
synthetic databases) are written by the commit directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from coevo.memory.errors import StoreError
from coevo.messages import Event
from coevo.tasks.problem import Problem


@dataclass
class RoundBatch:
    run_id: str
    round: int
    events: list[dict[str, Any]] = field(default_factory=list)
    # Keyed by problem id: a problem seen twice in a round is stored once (the last call wins).
    problems: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Curriculum flags for problems stored by earlier rounds.
    curriculum: dict[str, bool] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # Per problem touched this round: its curriculum flag and the round's attempts at it.
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    skill_profiles: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def add_event(self, event: Event) -> None:
        self.events.append(event_row(self.run_id, event))

    def add_problem(self, problem: Problem, round: int, in_curriculum: bool) -> None:
        provenance = problem.provenance
        earlier = self.problems.get(problem.id)
        self.problems[problem.id] = {
            "run": self.run_id,
            "problem_id": problem.id,
            "question": problem.question,
            "answer": problem.answer,
            "solution": problem.solution,
            "skills": list(problem.skills),
            "difficulty": dict(problem.difficulty),
            "source": provenance.source,
            "parent_id": provenance.parent_id,
            "author": provenance.author,
            "details": _checked_json(provenance.details, f"details of problem {problem.id}"),
            "round_created": earlier["round_created"] if earlier else round,
            "in_curriculum": in_curriculum,
        }
        self.curriculum.pop(problem.id, None)
        self._history(problem.id)["in_curriculum"] = in_curriculum

    def set_curriculum(self, problem_id: str, in_curriculum: bool) -> None:
        if problem_id in self.problems:
            self.problems[problem_id]["in_curriculum"] = in_curriculum
        else:
            self.curriculum[problem_id] = in_curriculum
        self._history(problem_id)["in_curriculum"] = in_curriculum

    def _history(self, problem_id: str) -> dict[str, Any]:
        return self.history.setdefault(
            problem_id,
            {
                "run": self.run_id,
                "round": self.round,
                "problem_id": problem_id,
                "in_curriculum": False,
                "attempts": 0,
                "correct": 0,
            },
        )

    def add_attempt(
        self,
        *,
        problem_id: str,
        agent: str,
        policy_version: str | None,
        attempt_index: int,
        response: str,
        extracted_answer: str | None,
        correct: bool,
        reward: float,
        failure: str | None = None,
        finish_reason: str | None = None,
        completion_tokens: int = 0,
        graded: bool = True,
        detail: str | None = None,
    ) -> None:
        history = self._history(problem_id)
        if graded:  # an attempt nobody judged is stored, but counts neither way
            history["attempts"] += 1
            history["correct"] += int(correct)
        self.attempts.append(
            {
                "run": self.run_id,
                "round": self.round,
                "problem_id": problem_id,
                "agent": agent,
                "policy_version": policy_version,
                "attempt_index": attempt_index,
                "response": response,
                "extracted_answer": extracted_answer,
                "correct": correct,
                "reward": reward,
                "failure": failure,
                "finish_reason": finish_reason,
                "completion_tokens": completion_tokens,
                "graded": graded,
                "detail": detail,
            }
        )

    def add_skill_profile(
        self, *, agent: str, skill: str, attempts: int, correct: int, missing: float
    ) -> None:
        self.skill_profiles.append(
            {
                "run": self.run_id,
                "agent": agent,
                "round": self.round,
                "skill": skill,
                "attempts": attempts,
                "correct": correct,
                "missing": missing,
            }
        )

    def set_state(self, key: str, value: Any) -> None:
        """Resumable run state (teacher state_dict, RNG state, ...), stored as JSON with this round."""
        self.state[key] = _checked_json(value, f"run state {key!r}")


def event_row(run_id: str, event: Event, *, provisional: bool = False) -> dict[str, Any]:
    """The messages-table row of an event (its full JSON is the payload)."""
    return {
        "run": run_id,
        "event_id": event.id,
        "provisional": provisional,
        "round": event.round,
        "episode": event.episode,
        "type": event.type,
        "sender": event.sender,
        "recipients": list(event.recipients),
        "policy_version": event.policy_version,
        "created_at": event.created_at,
        "payload": event.model_dump(mode="json"),
    }


def _checked_json(value: Any, what: str) -> Any:
    # Fail while the round is built, with a name, rather than inside the commit's transaction.
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serializable: {exc}") from exc
    return value
