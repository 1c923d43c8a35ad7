"""Export speed and memory on a large synthetic run: 100,000 attempts and 1,000,000 messages.

    .venv/bin/python benchmarks/export_speed.py                  # build the run, export every kind
    .venv/bin/python benchmarks/export_speed.py --scale 0.1      # a tenth of it (memory growth check)
    .venv/bin/python benchmarks/export_speed.py --run-dir DIR    # reuse a run built before

The run is written through the memory's own API (`Store.create_run`, one `RoundBatch` per round,
`commit_round`), as a society of a procedural Teacher, a Solver, a Generator, five Students and a
Coach would leave it: per round 500 problems posed (a quarter of them refinements of the last
round's), 4 attempts at each (SolutionSubmitted + AttemptGraded), refinements and demonstrations,
Generator proposals and reviews, Learning-by-Teaching explanations with five exams and a score
each, and a Coach report on each. Building it is timed on its own.

Each kind is then exported by `coevo export` in a fresh process, so each peak RSS
(`resource.getrusage`, the process's own maximum) is that export's alone; the seconds are the
export's own (inside the process) and the process's wall time with Python's start-up and imports.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import yaml

from coevo.export.kinds import KINDS
from coevo.memory.store import DB_NAME, Store
from coevo.messages import (
    AttemptGraded,
    CoachReport,
    Demonstration,
    Event,
    EventBase,
    ExamItem,
    ExamResult,
    Explanation,
    ExplanationScored,
    ProblemPosed,
    ProblemProposed,
    ProblemRefined,
    ProposalReviewed,
    RoundFinished,
    RoundStarted,
    SolutionSubmitted,
)
from coevo.society.session import CONFIG_SNAPSHOT, run_id_for
from coevo.tasks.problem import Problem, Provenance
from coevo.tasks.procedural import generate

SKILLS = ["add_no_carry", "add_carry", "sub_no_borrow", "sub_borrow", "multiplication", "word_two_step"]
STUDENTS = 5
ATTEMPTS = 4
# Messages per round besides Learning by Teaching: posed, 4 x (submitted, graded), and the
# refinement, demonstration, proposal and review of a quarter of the problems; plus two lifecycle.
CONFIG: dict[str, Any] = {
    "name": "export-bench",
    "seed": 0,
    "engines": {"local": {"kind": "auto", "model": "builtin:smollm2-135m-instruct"}},
    "agents": {
        "teacher": {
            "role": "teacher",
            "policy": "procedural",
            "curriculum": {"kind": "alp-gmm", "skills": SKILLS},
        },
        "solver": {"role": "solver", "engine": "local", "trainable": True},
        "generator": {"role": "generator", "engine": "local", "trainable": True},
        **{f"student_{i}": {"role": "student", "engine": "local"} for i in range(STUDENTS)},
        "coach": {"role": "coach", "engine": "local"},
    },
    "graph": [
        {"source": "teacher", "target": "solver", "message": "ProblemPosed"},
        {"source": "solver", "target": "teacher", "message": "SolutionSubmitted"},
        {"source": "teacher", "target": "solver", "message": "ProblemRefined", "deliver": "next_round"},
        {"source": "teacher", "target": "generator", "message": "Demonstration"},
        {"source": "generator", "target": "teacher", "message": "ProblemProposed"},
        *({"source": "teacher", "target": f"student_{i}", "message": "Explanation"} for i in range(STUDENTS)),
        *({"source": f"student_{i}", "target": "teacher", "message": "ExamResult"} for i in range(STUDENTS)),
        {"source": "teacher", "target": "coach", "message": "Explanation"},
        {"source": "coach", "target": "teacher", "message": "CoachReport"},
    ],
    "schedule": {"rounds": 50, "problems_per_round": 500, "attempts_per_problem": ATTEMPTS},
    "trainers": [
        {"kind": "socratic_solver_dpo", "agent": "solver"},
        {"kind": "socratic_generator_sft", "agent": "generator"},
    ],
}


class Round:
    """One round's batch, and the events of it written with ids and links as the runtime sets them."""

    def __init__(self, store: Store, run_id: str, index: int) -> None:
        self.batch = store.round_batch(run_id, index)
        self.index = index
        self.policy = "base" if index == 0 else f"v{index}"

    def emit(
        self,
        cls: type[EventBase],
        episode: int | None,
        sender: str,
        recipients: list[str],
        replies: list[str],
        **fields: Any,
    ) -> str:
        event = cls(
            id=f"{self.index}-{len(self.batch.events)}",
            round=self.index,
            episode=episode,
            sender=sender,
            recipients=recipients,
            in_reply_to=replies,
            policy_version="procedural" if sender == "teacher" else self.policy,
            **fields,
        )
        self.batch.add_event(cast(Event, event))
        return event.id


def build(run_dir: Path, rounds: int, problems: int, messages: int) -> tuple[int, int]:
    """Write the synthetic run; (attempts, messages) written."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config = {**CONFIG, "schedule": {**CONFIG["schedule"], "rounds": rounds, "problems_per_round": problems}}
    (run_dir / CONFIG_SNAPSHOT).write_text(yaml.safe_dump(config, sort_keys=False))
    store = Store.for_run_dir(run_dir)
    run_id = run_id_for(run_dir)
    agents = [
        {"name": n, "role": a["role"], "engine": a.get("engine", "-")} for n, a in config["agents"].items()
    ]
    store.create_run(config["name"], json.dumps(config), 0, agents, run_id=run_id)
    refined = problems // 4
    others = 2 + problems * (1 + 2 * ATTEMPTS) + 4 * refined
    explanations = max(0, math.ceil((messages / rounds - others) / (3 + STUDENTS)))
    rng = random.Random(0)
    held: list[Problem] = []  # refined problems, posed in the next round
    attempts = written = 0
    for index in range(rounds):
        r = Round(store, run_id, index)
        r.emit(RoundStarted, None, "scheduler", [], [], episodes=problems)
        fresh = [_procedural(rng, i) for i in range(problems - len(held))]
        posed, held = [*held, *fresh], []
        for episode, problem in enumerate(posed):
            failed = _attempts(r, rng, episode, problem)
            if episode < refined:
                held.append(_refine(r, rng, episode, problem, failed))
        for e in range(explanations):
            _teach(r, rng, len(posed) + e, posed[e % len(posed)])
        correct = sum(a["correct"] for a in r.batch.attempts)
        r.emit(
            RoundFinished,
            None,
            "scheduler",
            [],
            [],
            attempts=len(r.batch.attempts),
            correct=correct,
            accuracy=0.4,
        )
        attempts += len(r.batch.attempts)
        written += len(r.batch.events)
        store.commit_round(r.batch)
    store.close()
    return attempts, written


def _procedural(rng: random.Random, i: int) -> Problem:
    return generate(SKILLS[i % len(SKILLS)], [rng.random() for _ in range(3)], seed=rng.randrange(2**31))


def _attempts(r: Round, rng: random.Random, episode: int, problem: Problem) -> str:
    """The problem posed and attempted `ATTEMPTS` times, graded, flagged; a failed attempt."""
    pid = problem.id
    posed = r.emit(
        ProblemPosed, episode, "teacher", ["solver"], [], problem_id=pid, question=problem.question
    )
    correct, failed = 0, ""
    for k in range(ATTEMPTS):
        right = rng.random() < 0.4
        value = problem.answer if right else str(rng.randint(0, 999))
        response = (
            f"Let me work it out step by step. {problem.question} I get {value}.\nThe answer is {value}."
        )
        sent = r.emit(
            SolutionSubmitted,
            episode,
            "solver",
            ["teacher"],
            [posed],
            problem_id=pid,
            attempt_index=k,
            response=response,
        )
        grade: dict[str, Any] = {"extracted_answer": value, "correct": right, "reward": float(right)}
        r.emit(
            AttemptGraded,
            episode,
            "teacher",
            [],
            [sent],
            problem_id=pid,
            attempt_index=k,
            solver="solver",
            **grade,
        )
        r.batch.add_attempt(
            problem_id=pid,
            agent="solver",
            policy_version=r.policy,
            attempt_index=k,
            response=response,
            **grade,
        )
        correct += right
        failed = failed if right else response
    r.batch.add_problem(problem, r.index, in_curriculum=0 < correct < ATTEMPTS)
    return failed


def _refine(r: Round, rng: random.Random, episode: int, problem: Problem, failed: str) -> Problem:
    """A refinement (posed next round), its demonstration, and the Generator's accepted proposal."""
    pid = problem.id
    child = _procedural(rng, 0).model_copy(update={"skills": problem.skills})
    provenance = child.provenance.model_copy(
        update={"source": "refined", "parent_id": pid, "author": "teacher"}
    )
    child = child.model_copy(update={"provenance": provenance})
    r.batch.add_problem(child, r.index, in_curriculum=False)
    refined = {"problem_id": child.id, "question": child.question, "answer": child.answer}
    r.emit(
        ProblemRefined,
        episode,
        "teacher",
        ["solver"],
        [],
        parent_problem_id=pid,
        success_rate=0.5,
        zone="learning",
        **refined,
    )
    demo = r.emit(
        Demonstration,
        episode,
        "teacher",
        ["generator"],
        [],
        source_problem_id=pid,
        failed_response=failed,
        target_problem_id=child.id,
        target_question=child.question,
    )
    a, b = rng.randint(10, 999), rng.randint(10, 999)
    question = (
        f"A baker makes {a} rolls in the morning and {b} rolls in the afternoon. How many rolls in all?"
    )
    origin = Provenance(source="generated", parent_id=pid, author="generator")
    proposal = Problem(
        id=Problem.make_id(question, str(a + b)),
        question=question,
        answer=str(a + b),
        skills=problem.skills,
        provenance=origin,
    )
    r.batch.add_problem(proposal, r.index, in_curriculum=True)
    fields = {"problem_id": proposal.id, "question": question, "answer": proposal.answer}
    proposed = r.emit(
        ProblemProposed, episode, "generator", ["teacher"], [demo], source_problem_id=pid, **fields
    )
    r.emit(
        ProposalReviewed,
        episode,
        "teacher",
        [],
        [proposed],
        proposal_id=proposed,
        problem_id=proposal.id,
        accepted=True,
        reason="verified",
    )
    return child


def _teach(r: Round, rng: random.Random, episode: int, problem: Problem) -> None:
    """An explanation taught to every Student, their exams, its LbT score, and a Coach's report."""
    students = [f"student_{i}" for i in range(STUDENTS)]
    rationale = (
        f"Read the problem: {problem.question} Work it out step by step. The answer is {problem.answer}."
    )
    exam = [ExamItem(problem_id=problem.id, question=problem.question)]
    explained = r.emit(
        Explanation,
        episode,
        "teacher",
        [*students, "coach"],
        [],
        problem_id=problem.id,
        question=problem.question,
        rationale=rationale,
        answer=problem.answer,
        exam=exam,
    )
    results = []
    for student in students:
        right = rng.randint(0, 3)
        results.append(
            r.emit(
                ExamResult,
                episode,
                student,
                ["teacher", "coach"],
                [explained],
                explanation_id=explained,
                problem_id=problem.id,
                exam_problem_ids=[problem.id],
                correct=right,
                total=3,
                answers=[problem.answer] * right,
            )
        )
    lbt = rng.random()
    score = {"correct": True, "lbt_score": lbt, "score": 0.5 + 0.5 * lbt, "students": STUDENTS}
    r.emit(
        ExplanationScored,
        episode,
        "teacher",
        [],
        results,
        explanation_id=explained,
        problem_id=problem.id,
        **score,
    )
    r.emit(
        CoachReport,
        episode,
        "coach",
        ["teacher"],
        [explained, *results],
        transcript_ids=[explained, *results],
        scores={"explanations": float(rng.randint(1, 3)), "positive_climate": float(rng.randint(1, 7))},
        highlights=["The teacher worked the example step by step."],
        missed=["The teacher did not ask the students to explain a step."],
        suggestions=[f"Ask why {problem.answer} is right before moving on."],
    )


def child(run_dir: Path, kind: str, out: Path) -> None:
    """One export, in this process: its own seconds, rows and peak RSS as JSON on stdout."""
    from coevo.export.pipeline import ExportRequest, export_dataset

    report = export_dataset(ExportRequest(run_dir=run_dir, kind=kind, out=out, force=True))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": report.seconds, "rows": report.rows, "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", default="/tmp/coevo-export-bench/run", help="where the run is (built)")
    parser.add_argument("--out", default="/tmp/coevo-export-bench/out", help="where exports are written")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 100k attempts / 1M messages")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="export the run already in --run-dir")
    parser.add_argument("--kinds", default=",".join(KINDS), help="kinds to export (default: all)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    run_dir, out = Path(args.run_dir), Path(args.out)
    if args.child:
        child(run_dir, args.child, out / args.child)
        return
    if not args.reuse:
        attempts = round(100_000 * args.scale)
        problems = attempts // (args.rounds * ATTEMPTS)
        started = time.perf_counter()
        written = build(run_dir, args.rounds, problems, round(1_000_000 * args.scale))
        size = (run_dir / DB_NAME).stat().st_size / 2**20
        print(
            f"built {written[0]:,} attempts and {written[1]:,} messages in {args.rounds} rounds "
            f"in {time.perf_counter() - started:.1f} s (database {size:,.0f} MiB)"
        )
    print(f"{'kind':<11} {'rows':>9} {'export s':>9} {'process s':>10} {'peak RSS MiB':>13}")
    total = 0.0
    for kind in args.kinds.split(","):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--run-dir", str(run_dir), "--out", str(out), "--child", kind],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
        total += wall
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{kind:<11} {result['rows']:>9,} {result['seconds']:>9.1f} {wall:>10.1f} "
            f"{result['peak_mib']:>13.0f}"
        )
    print(f"all kinds: {total:.1f} s")


if __name__ == "__main__":
    main()
