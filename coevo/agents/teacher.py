"""The Teacher: opens episodes with problems, grades attempts, refines failed problems
(Socratic-Zero), reviews problems a Generator proposes, explains problems to Students and scores
each explanation by their exams (Learning by Teaching).

Two policies share this behaviour and differ in what needs a model:

- `procedural`: problems come from a curriculum over the procedural generator (ALP-GMM, uniform,
  static, fixed), so every answer is computed, never guessed — what makes a CPU run with a 135M
  Solver meaningful. It refines by moving to neighbouring difficulty of the same skill, explains
  with the problem's worked derivation, and accepts a proposed problem only when the question is
  plain arithmetic whose answer it can compute and compare (coevo.tasks.arithmetic).
- `llm`: a language model (typically strong, behind the `openai` engine) poses from a seed pool
  or dataset, from a curriculum, or writes new problems (`params.write`); it refines, explains and
  checks answers with its model. Anything it writes counts only once it re-derives the answer:
  `verify_samples` independent solutions of which `verify_agree` must match (1/1 is a plain
  re-derivation; 3/2 is STAT-Syn's agreement rule). It reads the Coach's reports: their
  suggestions join its explanation prompt from the next round on.

Grading is the verifier's (coevo.tasks.verifier), run on every attempt against the reference
answer the Teacher kept; the model's own claims never count.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coevo.agents.base import LLMRole
from coevo.agents.drafts import DraftError, parse_problem_draft
from coevo.agents.registry import register_role
from coevo.agents.role import AttemptData, Context, Role, RoleBuild
from coevo.engines.base import ChatMessage
from coevo.messages import (
    AttemptGraded,
    CoachReport,
    Demonstration,
    ExamItem,
    ExamResult,
    Explanation,
    ExplanationScored,
    Message,
    Outcome,
    ProblemPosed,
    ProblemProposed,
    ProblemRefined,
    ProposalReviewed,
    SolutionSubmitted,
)
from coevo.tasks.answers import as_fraction, extract_answer
from coevo.tasks.arithmetic import derive_answer
from coevo.tasks.lbt import explanation_score
from coevo.tasks.problem import Problem, Provenance
from coevo.tasks.prompts import solution_text, solver_messages

Zone = Literal["mastered", "learning", "too_hard"]


def zone(success_rate: float) -> Zone:
    """Socratic-Zero's zones over the k attempts at one problem."""
    if success_rate >= 1.0:
        return "mastered"
    if success_rate <= 0.0:
        return "too_hard"
    return "learning"


class ProceduralTeacherParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Exam problems per explanation (LbT: 3 variants of the problem).
    exam_problems: int = Field(default=3, ge=1)
    # w in an explanation's score, w * correctness + (1 - w) * LbT score (LbT's M2: 0.5; 1 ranks
    # by correctness alone, the paper's ablation).
    score_weight: float = Field(default=0.5, ge=0, le=1)


class LLMTeacherParams(ProceduralTeacherParams):
    # Rationales written per problem when explaining (LbT M1 writes several and scores each).
    explanations: int = Field(default=1, ge=1)
    # Write new problems instead of drawing from the pool or curriculum.
    write: bool = False
    # Independent solutions the Teacher samples to check an answer, and how many must match it.
    verify_samples: int = Field(default=1, ge=1)
    verify_agree: int = Field(default=1, ge=1)
    # Coach suggestions carried into the explanation prompt.
    max_notes: int = Field(default=5, ge=0)


# --- structured outputs of the LLM Teacher ---------------------------------------------------


class WrittenProblem(BaseModel):
    """A problem the Teacher writes: the question, a worked solution and the final answer."""

    problem: str
    solution: str
    answer: str


class ExplanationContent(BaseModel):
    """A worked rationale for a problem and the final answer it reaches."""

    rationale: str
    answer: str


_REFINE_V1 = (
    "You are a mathematics teacher. A student failed the problem below. Write ONE new problem "
    "that targets the student's error while keeping the mathematical essence of the original, "
    'with a worked solution and its final answer (a number). Reply as JSON: {"problem": ..., '
    '"solution": ..., "answer": ...}'
)
_WRITE_V1 = (
    "You are a mathematics teacher. Write ONE new practice problem like the example, with a "
    'worked solution and its final answer (a number). Reply as JSON: {"problem": ..., '
    '"solution": ..., "answer": ...}'
)
# A prompt version is never edited once used (runs record it); v2 differs from v1 only in how it
# explains: in plain text, all rationales of a problem sampled in one request (n = explanations),
# as LbT writes its rationales — the form a Teacher trainer trains on.
TEACHER_PROMPTS: dict[str, dict[str, str]] = {
    "v1": {
        "refine": _REFINE_V1,
        "write": _WRITE_V1,
        "explain": (
            "You are a mathematics teacher. Explain step by step how to solve the problem, so that a "
            'student can solve similar problems. Reply as JSON: {"rationale": ..., "answer": ...}'
        ),
    },
    "v2": {
        "refine": _REFINE_V1,
        "write": _WRITE_V1,
        "explain": (
            "You are a mathematics teacher. Explain step by step how to solve the problem, so that a "
            "student can solve similar problems. End with the line: The answer is <number>."
        ),
    },
}
# How each version's explain prompt asks for its reply.
_EXPLAINS_AS_JSON = {"v1": True, "v2": False}


def refine_task(problem: Problem, failed_response: str | None) -> str:
    attempt = (failed_response or "(no answer)").strip()[:2000]
    return (
        f"Original problem: {problem.question}\nCorrect answer: {problem.answer}\n\n"
        f"Student's attempt:\n{attempt}"
    )


@dataclass(frozen=True)
class Written:
    """A rationale as the Teacher wrote it: its text, the answer it reaches, and for a model's
    rationale the exact prompt and raw reply (what a Teacher trainer trains on)."""

    rationale: str
    answer: str | None
    prompt: tuple[ChatMessage, ...] = ()
    completion: str = ""


@dataclass(frozen=True)
class _Pending:
    key: tuple[Any, ...]
    value: Any


class TeacherBase(Role):
    """What both policies do; subclasses supply how problems are drawn, refined and checked."""

    params: ProceduralTeacherParams

    def __init__(self, build: RoleBuild) -> None:
        super().__init__(build)
        self.curriculum = build.curriculum
        self.pool: tuple[Problem, ...] = build.pool
        self.success_band = build.success_band
        # Accepted proposals wait here and are posed before fresh problems in later rounds.
        self.queue: list[Problem] = []
        self.round_problems: list[Problem] = []
        # Learning applied at the end of the round, in episode order, so concurrent episodes
        # cannot change what a later one sees (the run stays deterministic for a seed).
        self._observations: list[_Pending] = []
        self._accepted: list[_Pending] = []
        self._explained: dict[str, tuple[str, bool | None]] = {}
        self._scores: list[_Pending] = []
        self._figures: dict[str, float] = {}

    # --- opening episodes ------------------------------------------------------------------------

    async def begin_round(self, round_index: int, episodes: int, rng: random.Random) -> int:
        take = self.queue[:episodes]
        self.queue = self.queue[episodes:]
        fresh = await self.draw(episodes - len(take), rng) if episodes > len(take) else []
        self.round_problems = [*take, *fresh]
        return len(self.round_problems)

    async def draw(self, n: int, rng: random.Random) -> list[Problem]:
        """`n` new problems for this round (fewer when the source runs dry)."""
        if self.curriculum is not None:
            return self.curriculum.sample(n, rng)
        if not self.pool:
            return []
        return [self.pool[rng.randrange(len(self.pool))] for _ in range(n)]

    async def open(self, ctx: Context, slot: int) -> None:
        problem = self.round_problems[slot]
        ctx.add_problem(problem)
        if ctx.routes("ProblemPosed"):
            ctx.emit(
                ProblemPosed(
                    problem_id=problem.id,
                    question=problem.question,
                    skills=problem.skills,
                    difficulty=problem.difficulty,
                )
            )
        if ctx.routes("Explanation"):
            await self.explain(ctx, problem)

    # --- handling --------------------------------------------------------------------------------

    async def handle(self, ctx: Context, inbox: Sequence[Message]) -> None:
        attempts = [m for m in inbox if isinstance(m, SolutionSubmitted)]
        if attempts:
            await self.grade(ctx, attempts)
        for proposal in (m for m in inbox if isinstance(m, ProblemProposed)):
            await self.review(ctx, proposal)
        results = [m for m in inbox if isinstance(m, ExamResult)]
        if results:
            self.score(ctx, results)
        reports = [m for m in inbox if isinstance(m, CoachReport)]
        if reports:
            self.take_reports(ctx, reports)

    async def grade(self, ctx: Context, attempts: Sequence[SolutionSubmitted]) -> None:
        """Grade a batch of attempts; per (solver, problem): zone, curriculum flag, refinement."""
        groups: dict[tuple[str, str], list[SolutionSubmitted]] = {}
        for attempt in attempts:
            groups.setdefault((attempt.sender, attempt.problem_id), []).append(attempt)
        problems = {key: ctx.problem(key[1]) for key in groups}
        items = [
            (a.response, problem.answer, problem.question)
            for key, group in groups.items()
            if (problem := problems[key]) is not None
            for a in group
        ]
        grades = iter(await ctx.grader.grade_many(items))
        for (solver, problem_id), group in groups.items():
            problem = problems[(solver, problem_id)]
            if problem is None:
                continue  # not a problem of this run (another teacher's message): not ours to grade
            correct = graded = 0
            failed: str | None = None
            for attempt in group:
                grade = next(grades)
                # An attempt the verifier could not judge says nothing about the Solver: it counts
                # neither way, and is never the failed attempt a refinement starts from.
                if grade.graded:
                    graded += 1
                    correct += grade.correct
                    if not grade.correct and failed is None:
                        failed = attempt.response
                ctx.emit(
                    AttemptGraded(
                        problem_id=problem_id,
                        attempt_index=attempt.attempt_index,
                        solver=solver,
                        extracted_answer=grade.extracted,
                        correct=grade.correct,
                        reward=grade.reward,
                        failure=grade.failure,
                        graded=grade.graded,
                        detail=grade.detail,
                    ),
                    reply_to=[attempt],
                )
                ctx.record_attempt(
                    AttemptData(
                        problem_id=problem_id,
                        agent=solver,
                        policy_version=attempt.policy_version,
                        attempt_index=attempt.attempt_index,
                        response=attempt.response,
                        extracted_answer=grade.extracted,
                        correct=grade.correct,
                        reward=grade.reward,
                        failure=grade.failure,
                        finish_reason=attempt.finish_reason,
                        completion_tokens=attempt.usage.completion_tokens,
                        skills=tuple(problem.skills),
                        graded=grade.graded,
                        detail=grade.detail,
                    )
                )
            outcome = Outcome(attempts=graded, correct=correct, ungraded=len(group) - graded)
            if graded == 0:
                # Nothing was judged: no zone, no curriculum decision, no learning progress.
                ctx.add_problem(problem)
                continue
            success = outcome.success_rate
            low, high = self.success_band
            ctx.add_problem(problem, in_curriculum=low <= success <= high)
            self._observations.append(_Pending((*ctx.order, solver), (problem, success)))
            await self._refine_if_routed(ctx, problem, outcome, failed, group)

    async def _refine_if_routed(
        self,
        ctx: Context,
        problem: Problem,
        outcome: Outcome,
        failed: str | None,
        attempts: Sequence[Message],
    ) -> None:
        to_solver = ctx.routes("ProblemRefined", outcome)
        to_generator = ctx.routes("Demonstration", outcome) if failed is not None else []
        if not to_solver and not to_generator:
            return
        success = outcome.success_rate
        # One generator per episode seed, as the refinement of the episode's problem.
        refined = await self.refine(ctx, problem, success, failed, random.Random(ctx.episode_seed))
        self._figures["refinements_tried"] = self._figures.get("refinements_tried", 0) + 1
        if refined is None:
            return
        self._figures["refinements"] = self._figures.get("refinements", 0) + 1
        ctx.add_problem(refined)
        if to_solver:
            ctx.emit(
                ProblemRefined(
                    parent_problem_id=problem.id,
                    problem_id=refined.id,
                    question=refined.question,
                    answer=refined.answer,
                    success_rate=success,
                    zone=zone(success),
                ),
                outcome=outcome,
                reply_to=attempts,
            )
        if to_generator and failed is not None:
            ctx.emit(
                Demonstration(
                    source_problem_id=problem.id,
                    failed_response=failed,
                    target_problem_id=refined.id,
                    target_question=refined.question,
                ),
                outcome=outcome,
                reply_to=attempts,
            )

    async def refine(
        self, ctx: Context, problem: Problem, success_rate: float, failed: str | None, rng: random.Random
    ) -> Problem | None:
        raise NotImplementedError

    async def check_answer(self, ctx: Context, question: str, answer: str) -> tuple[bool, str]:
        """Whether the Teacher can confirm `answer` to `question`, and why not."""
        raise NotImplementedError

    async def review(self, ctx: Context, proposal: ProblemProposed) -> None:
        """A Generator's problem joins the curriculum only once its answer is confirmed."""
        self._figures["proposals"] = self._figures.get("proposals", 0) + 1
        problem: Problem | None = None
        if proposal.parse_error is not None:
            accepted, reason = False, f"unreadable proposal: {proposal.parse_error}"
        else:
            accepted, reason = await self.check_answer(ctx, proposal.question, proposal.answer)
        if accepted:
            source = ctx.problem(proposal.source_problem_id)
            problem = Problem(
                id=Problem.make_id(proposal.question, proposal.answer),
                question=proposal.question,
                answer=proposal.answer,
                skills=list(source.skills) if source else [],
                difficulty=dict(source.difficulty) if source else {},
                provenance=Provenance(
                    source="generated", parent_id=proposal.source_problem_id, author=proposal.sender
                ),
            )
            ctx.add_problem(problem)
            self._accepted.append(_Pending((*ctx.order, proposal.id), problem))
            self._figures["accepted"] = self._figures.get("accepted", 0) + 1
        ctx.emit(
            ProposalReviewed(
                proposal_id=proposal.id,
                problem_id=problem.id if problem else None,
                accepted=accepted,
                reason=reason,
            ),
            reply_to=[proposal],
        )

    # --- teaching (Learning by Teaching) ---------------------------------------------------------

    def similar(self, problem: Problem, n: int, rng: random.Random) -> list[Problem]:
        """Exam problems like `problem`: curriculum neighbours, else pool problems sharing a skill."""
        if self.curriculum is not None:
            try:
                return [self.curriculum.refine(problem, 0.5, rng) for _ in range(n)]
            except ValueError:
                pass  # not a problem of the curriculum's taxonomy: fall back to the pool
        others = [p for p in self.pool if p.id != problem.id]
        alike = [p for p in others if set(p.skills) & set(problem.skills)] or others
        return rng.sample(alike, min(n, len(alike)))

    async def rationales(self, ctx: Context, problem: Problem) -> list[Written]:
        raise NotImplementedError

    async def explain(self, ctx: Context, problem: Problem) -> None:
        rng = random.Random(ctx.seed("exam"))
        exam = self.similar(problem, self.params.exam_problems, rng)
        for item in exam:
            ctx.add_problem(item)
        written = await self.rationales(ctx, problem)
        grades = await ctx.grader.grade_many(
            [(w.answer or "", problem.answer, problem.question) for w in written]
        )
        for w, grade in zip(written, grades, strict=True):
            # None: the verifier could not judge the rationale's answer (its score is then unknown).
            right = (w.answer is not None and grade.correct) if grade.graded else None
            message = ctx.emit(
                Explanation(
                    problem_id=problem.id,
                    question=problem.question,
                    rationale=w.rationale,
                    answer=w.answer,
                    exam=[ExamItem(problem_id=p.id, question=p.question) for p in exam],
                    prompt=[{"role": m["role"], "content": m["content"]} for m in w.prompt],
                    completion=w.completion,
                )
            )
            self._explained[message.id] = (problem.id, right)

    def score(self, ctx: Context, results: Sequence[ExamResult]) -> None:
        """LbT score of each explanation: its Students' exam accuracy, with its own correctness."""
        by_explanation: dict[str, list[ExamResult]] = {}
        for result in results:
            by_explanation.setdefault(result.explanation_id, []).append(result)
        for explanation_id, group in by_explanation.items():
            if explanation_id not in self._explained:
                continue  # another teacher's explanation
            problem_id, right = self._explained[explanation_id]
            total = sum(r.total for r in group)
            lbt = sum(r.correct for r in group) / total if total else 0.0
            # A score needs both halves judged: the rationale's own answer and some exam answer.
            graded = right is not None and total > 0
            weight = self.params.score_weight
            ctx.emit(
                ExplanationScored(
                    explanation_id=explanation_id,
                    problem_id=problem_id,
                    correct=bool(right),
                    lbt_score=lbt,
                    score=explanation_score(bool(right), lbt, weight),
                    students=len(group),
                    graded=graded,
                    weight=weight,
                ),
                outcome=Outcome(
                    attempts=total,
                    correct=sum(r.correct for r in group),
                    ungraded=sum(r.ungraded for r in group),
                ),
                reply_to=group,
            )
            if graded:
                self._scores.append(_Pending((*ctx.order, explanation_id), lbt))

    def take_reports(self, ctx: Context, reports: Sequence[CoachReport]) -> None:
        """Only an LLM Teacher uses the Coach (its registry entry says so)."""

    # --- round end -----------------------------------------------------------------------------

    def end_round(self, round_index: int) -> dict[str, float]:
        for pending in sorted(self._observations, key=lambda p: p.key):
            problem, success = pending.value
            if self.curriculum is not None:
                self.curriculum.update(problem, success)
        self.queue.extend(p.value for p in sorted(self._accepted, key=lambda p: p.key))
        figures = dict(self._figures)
        if figures.get("proposals"):
            figures["acceptance_rate"] = figures.get("accepted", 0) / figures["proposals"]
        if self._scores:  # summed in a fixed order: float addition is not associative
            scores = [p.value for p in sorted(self._scores, key=lambda p: p.key)]
            figures["explanations_scored"] = len(scores)
            figures["lbt_score_mean"] = sum(scores) / len(scores)
        self._observations, self._accepted, self._figures, self._explained, self._scores = [], [], {}, {}, []
        self.round_problems = []
        return figures

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"queue": [p.model_dump(mode="json") for p in self.queue]}
        if self.curriculum is not None:
            state["curriculum"] = self.curriculum.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.curriculum is not None and "curriculum" in state:
            self.curriculum.load_state_dict(state["curriculum"])
        self.queue = [Problem.model_validate(p) for p in state.get("queue", [])]


_TEACHER_HANDLES: dict[str, set[str]] = {
    "SolutionSubmitted": {"AttemptGraded", "ProblemRefined", "Demonstration"},
    "ProblemProposed": {"ProposalReviewed"},
    "ExamResult": {"ExplanationScored"},
}
_TEACHER_OPENS = {"ProblemPosed", "Explanation"}
# Sent with the outcome of the attempts they are about (a refinement, a demonstration: the k graded
# attempts at the problem; a score: the Students' exam answers), so `when:` can select them.
_TEACHER_OUTCOMES = {"ProblemRefined", "Demonstration", "ExplanationScored"}


@register_role(
    "teacher",
    policy="procedural",
    summary="Poses problems from a procedural curriculum, grades attempts, refines failures, "
    "explains with worked derivations, accepts proposals whose arithmetic it can compute.",
    handles=_TEACHER_HANDLES,
    opens=_TEACHER_OPENS,
    activation={"ExamResult": "all"},
    engine="none",
    params=ProceduralTeacherParams,
    outcomes=_TEACHER_OUTCOMES,
)
class ProceduralTeacher(TeacherBase):
    def __init__(self, build: RoleBuild) -> None:
        super().__init__(build)
        assert isinstance(build.params, ProceduralTeacherParams)
        self.params = build.params

    async def refine(
        self, ctx: Context, problem: Problem, success_rate: float, failed: str | None, rng: random.Random
    ) -> Problem | None:
        if self.curriculum is None:
            return None
        try:
            refined = self.curriculum.refine(problem, success_rate, rng)
        except ValueError:
            return None  # not a problem of the curriculum's taxonomy (e.g. an accepted proposal)
        provenance = refined.provenance.model_copy(
            update={"source": "refined", "parent_id": problem.id, "author": self.name}
        )
        return refined.model_copy(update={"provenance": provenance})

    async def check_answer(self, ctx: Context, question: str, answer: str) -> tuple[bool, str]:
        derived = derive_answer(question)
        if derived is None:
            return False, "not one arithmetic expression the procedural teacher can compute"
        claimed = as_fraction(answer)
        if claimed is None or claimed != derived:
            return False, f"the answer is {_number(derived)}, not {answer!r}"
        return True, "answer computed and confirmed"

    async def rationales(self, ctx: Context, problem: Problem) -> list[Written]:
        return [Written(solution_text(problem.solution, problem.answer), problem.answer)]


def _rationales_per_problem(params: LLMTeacherParams) -> dict[str, int]:
    return {"Explanation": params.explanations}


@register_role(
    "teacher",
    policy="llm",
    summary="A language-model Teacher: poses from a pool, a curriculum or its own writing (answers "
    "re-derived), grades, refines, explains, reviews proposals and reads the Coach's reports.",
    handles={**_TEACHER_HANDLES, "CoachReport": set()},
    opens=_TEACHER_OPENS,
    activation={"ExamResult": "all", "CoachReport": "all"},
    params=LLMTeacherParams,
    outcomes=_TEACHER_OUTCOMES,
    prompts=TEACHER_PROMPTS,
    opening_counts=_rationales_per_problem,
)
class LLMTeacher(TeacherBase, LLMRole):
    def __init__(self, build: RoleBuild) -> None:
        super().__init__(build)
        assert isinstance(build.params, LLMTeacherParams)
        self.params: LLMTeacherParams = build.params
        self.notes: list[str] = []
        self._reports: list[_Pending] = []
        self.prompts = TEACHER_PROMPTS[self.prompt_version]

    async def draw(self, n: int, rng: random.Random) -> list[Problem]:
        if not self.params.write:
            return await super().draw(n, rng)
        seeds = [rng.randrange(2**31) for _ in range(n)]
        examples = [self.pool[rng.randrange(len(self.pool))].question if self.pool else None for _ in seeds]
        written = await asyncio.gather(
            *(self.write(seed, ex) for seed, ex in zip(seeds, examples, strict=True))
        )
        self._figures["written"] = self._figures.get("written", 0) + n
        kept = [p for p in written if p is not None]
        self._figures["written_kept"] = self._figures.get("written_kept", 0) + len(kept)
        return kept

    async def write(self, seed: int, example: str | None) -> Problem | None:
        task = f"Example: {example or 'What is 12 + 30?'}"
        return await self._author("write", task, seed, Provenance(source="generated", author=self.name))

    async def refine(
        self, ctx: Context, problem: Problem, success_rate: float, failed: str | None, rng: random.Random
    ) -> Problem | None:
        provenance = Provenance(source="refined", parent_id=problem.id, author=self.name)
        refined = await self._author(
            "refine", refine_task(problem, failed), ctx.seed("refine", problem.id), provenance
        )
        if refined is None:
            return None
        keep = {"skills": list(problem.skills), "difficulty": dict(problem.difficulty)}
        return refined.model_copy(update=keep)

    async def _author(self, prompt: str, task: str, seed: int, provenance: Provenance) -> Problem | None:
        """A problem the model writes, kept only when the Teacher re-derives its answer."""
        reply = await self.converse(self.prompts[prompt], task, seed=seed, output_type=WrittenProblem)
        draft = reply.value or _draft_from_text(reply.text)
        if draft is None:
            return None
        ok, _ = await self._rederive(draft.problem, draft.answer, seed)
        if not ok:
            return None
        return Problem(
            id=Problem.make_id(draft.problem, draft.answer),
            question=draft.problem,
            answer=draft.answer,
            solution=draft.solution or None,
            provenance=provenance,
        )

    async def check_answer(self, ctx: Context, question: str, answer: str) -> tuple[bool, str]:
        return await self._rederive(question, answer, ctx.seed("check", question))

    async def _rederive(self, question: str, answer: str, seed: int) -> tuple[bool, str]:
        """Solve the problem `verify_samples` times; confirmed when `verify_agree` answers match."""
        result = await self.sample(solver_messages(question), n=self.params.verify_samples, seed=seed)
        grades = await self.build.grader.grade_many([(c.text, answer, question) for c in result.completions])
        agree = sum(g.correct for g in grades)
        if agree >= self.params.verify_agree:
            return True, f"{agree}/{len(grades)} independent solutions agree"
        return False, f"only {agree}/{len(grades)} independent solutions reach {answer!r}"

    def explain_prompt(self) -> str:
        """The explain prompt, with the Coach's latest suggestions."""
        system = self.prompts["explain"]
        if self.notes:
            system += "\nYour coach suggested:\n" + "\n".join(f"- {note}" for note in self.notes)
        return system

    def eval_messages(self, question: str) -> list[ChatMessage]:
        # A Teacher is measured explaining: its explain prompt, whose rationale ends on the answer.
        return [
            ChatMessage(role="system", content=self.explain_prompt()),
            ChatMessage(role="user", content=question),
        ]

    async def rationales(self, ctx: Context, problem: Problem) -> list[Written]:
        if not _EXPLAINS_AS_JSON[self.prompt_version]:
            messages = tuple(self.eval_messages(problem.question))
            result = await self.sample(messages, n=self.params.explanations, seed=ctx.seed("explain"))
            return [Written(c.text, extract_answer(c.text), messages, c.text) for c in result.completions]
        system = self.explain_prompt()
        out: list[Written] = []
        for i in range(self.params.explanations):
            reply = await self.converse(
                system, problem.question, seed=ctx.seed("explain", i), output_type=ExplanationContent
            )
            if reply.value is not None:
                out.append(Written(reply.value.rationale, reply.value.answer, reply.prompt, reply.text))
            else:  # unreadable as JSON: the raw text is the rationale, its answer as extracted
                out.append(Written(reply.text, extract_answer(reply.text), reply.prompt, reply.text))
        return out

    def take_reports(self, ctx: Context, reports: Sequence[CoachReport]) -> None:
        for report in reports:
            self._reports.append(_Pending((*ctx.order, report.id), report.suggestions))

    def end_round(self, round_index: int) -> dict[str, float]:
        figures = super().end_round(round_index)
        suggestions = [s for p in sorted(self._reports, key=lambda p: p.key) for s in p.value]
        if suggestions:
            figures["coach_reports"] = len(self._reports)
            self.notes = suggestions[-self.params.max_notes :] if self.params.max_notes else []
        self._reports = []
        return figures

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "notes": list(self.notes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.notes = [str(n) for n in state.get("notes", [])]


def _draft_from_text(text: str) -> WrittenProblem | None:
    """The "Problem: … Solution: … Answer: …" form, for a model that ignored the JSON request."""
    try:
        draft = parse_problem_draft(text)
    except DraftError:
        return None
    return WrittenProblem(problem=draft.question, solution=draft.solution or "", answer=draft.answer)


def _number(value: Any) -> str:
    return str(value.numerator) if getattr(value, "denominator", 2) == 1 else str(value)
