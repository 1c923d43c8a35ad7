"""What a society's trainings were given, and checks that each training's rows come from the run's
own records (stored problems, graded attempts, demonstrations): shared by the tests of trainers
inside societies (tests/society/test_trainers_in_society.py, test_training_real_engine.py); the
`trainings` fixture in tests/society/conftest.py records them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coevo.agents.generator import generator_messages
from coevo.memory.store import Store
from coevo.messages import Demonstration
from coevo.tasks.arithmetic import derive_answer
from coevo.tasks.prompts import answer_line, solution_text, solver_messages
from coevo.trainers import registry
from coevo.trainers.socratic_generator_sft_trainer import generator_weight


@dataclass
class Training:
    """One call of a trainer's train function, as the society made it."""

    kind: str
    settings: Any
    rows: list[dict[str, Any]]
    output: Path


def record_trainings(monkeypatch: pytest.MonkeyPatch) -> list[Training]:
    """From now on, every training a society runs is appended to the returned list on its way to
    the real train function (the training service looks trainers up in the registry at each call)."""
    seen: list[Training] = []
    for name, kind in list(registry.TRAINERS.items()):

        def train(settings: Any, rows: Any, base: str, init: Any, output: Path, _kind: Any = kind) -> Any:
            seen.append(Training(_kind.name, settings, rows, output))
            return _kind.train(settings, rows, base, init, output)

        monkeypatch.setitem(registry.TRAINERS, name, dataclasses.replace(kind, train=train))
    return seen


def text(messages: list[dict[str, str]]) -> str:
    [message] = messages
    return message["content"]


class Records:
    """What the run stored up to and including one round, indexed the way rows are checked."""

    def __init__(self, store: Store, run_id: str, agent: str, until_round: int) -> None:
        self.problems = {p.question: p for p in store.problems(run_id) if p.round_created <= until_round}
        attempts = [a for a in store.attempts(run_id) if a.round <= until_round and a.graded]
        self.mine = [a for a in attempts if a.agent == agent]
        self.right = {(a.problem_id, a.response) for a in self.mine if a.correct}
        self.wrong = {(a.problem_id, a.response) for a in self.mine if not a.correct}
        self.outcomes: dict[str, list[bool]] = {}
        for a in attempts:
            self.outcomes.setdefault(a.problem_id, []).append(a.correct)

    def problem(self, prompt: list[dict[str, str]]) -> Any:
        """The stored problem a Solver prompt asks (the prompt must be the Solver's own)."""
        question = prompt[-1]["content"]
        problem = self.problems.get(question)
        assert problem is not None, f"not a problem of this run: {question!r}"
        assert prompt == solver_messages(question)
        return problem

    def reference(self, problem: Any) -> str:
        return solution_text(problem.solution, problem.answer)

    def solved(self, problem: Any) -> bool:
        return any(pid == problem.problem_id for pid, _ in self.right)


def check_rows(training: Training, store: Store, run_id: str, agent: str, round_index: int) -> None:
    """Assert that each row of `training` (made after `round_index`) comes from the run's records."""
    records = Records(store, run_id, agent, round_index)
    assert training.rows, training.kind
    for row in training.rows:
        if training.kind == "socratic_solver_dpo":
            problem = records.problem(row["prompt"])
            chosen, rejected = text(row["chosen"]), text(row["rejected"])
            assert (problem.problem_id, rejected) in records.wrong
            if (problem.problem_id, chosen) not in records.right:
                assert chosen == records.reference(problem) and not records.solved(problem)
        elif training.kind == "sft":
            problem = records.problem(row["prompt"])
            completion = text(row["completion"])
            if (problem.problem_id, completion) not in records.right:
                assert completion == records.reference(problem)
        elif training.kind == "stat_sft":
            question, completion = row["prompt"][-1]["content"], text(row["completion"])
            if question in records.problems:
                assert completion == records.reference(records.problem(row["prompt"]))
            else:  # STAT-Syn: a new problem, whose worked solution ends in its right answer
                assert row["prompt"] == solver_messages(question)
                value = derive_answer(question)
                assert value is not None and completion.endswith(answer_line(str(value)))
        elif training.kind == "socratic_generator_sft":
            demos = [
                e
                for e in store.events(run_id, types=["Demonstration"])
                if isinstance(e, Demonstration) and agent in e.recipients and e.round <= round_index
            ]
            by_id = {p.problem_id: p for p in records.problems.values()}
            matches = []
            for demo in demos:
                source, target = by_id[demo.source_problem_id], by_id[demo.target_problem_id]
                outcomes = records.outcomes.get(target.problem_id)
                if not outcomes or row["prompt"] != generator_messages(source.question, demo.failed_response):
                    continue
                if text(row["completion"]) != f"Problem: {target.question}\nAnswer: {target.answer}":
                    continue
                s = training.settings
                weight = generator_weight(sum(outcomes) / len(outcomes), s.weight_center, s.weight_sigma)
                matches.append(row["weight"] == pytest.approx(weight))
            assert any(matches), f"no demonstration to {agent} gives the row {row}"
        else:
            raise AssertionError(f"no check for trainer kind {training.kind}")
    if training.kind == "stat_sft":
        synthesized = [r for r in training.rows if r["prompt"][-1]["content"] not in records.problems]
        failed_skills = {
            skill
            for a in records.mine
            if a.round == round_index and not a.correct
            for skill in store_problem(records, a.problem_id).skills
        }
        assert len(synthesized) <= training.settings.synth_per_skill * len(failed_skills)


def store_problem(records: Records, problem_id: str) -> Any:
    [problem] = [p for p in records.problems.values() if p.problem_id == problem_id]
    return problem
