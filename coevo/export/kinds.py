"""The export kinds: for each, its columns (exactly those TRL reads, for the training kinds), how
its rows are made from a run's memory, and what the dataset card says about it.

The training kinds call the trainers' own row builders through the trainer registry (`sft`, `dpo`,
`generator`), with the random generator of the training run after the last selected round, so
their rows are the rows coevo's trainers train on. `kto` and `grpo` reuse the attempts and the
prompts those builders read. `curriculum`, `lbt` and `coach` stream the memory in batches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError

from coevo.agents.coach import INSTRUMENT_ITEMS, transcript
from coevo.agents.drafts import DraftError, parse_problem_draft
from coevo.export.selection import ProblemInfo, RunView, outcome_zone
from coevo.export.source import ExportError
from coevo.messages import (
    AttemptGraded,
    CoachReport,
    ExamResult,
    Explanation,
    ExplanationScored,
    Message,
    ProblemPosed,
    ProblemRefined,
    SolutionSubmitted,
)
from coevo.tasks.prompts import solver_messages
from coevo.trainers.datasets import (
    EXPLANATION_EVENTS,
    RowRequest,
    attempt_records,
    scored_explanations,
    training_rng,
)

if TYPE_CHECKING:
    import pyarrow as pa

# Messages that name the problem they are about.
_ABOUT_A_PROBLEM = (
    ProblemPosed,
    SolutionSubmitted,
    AttemptGraded,
    ProblemRefined,
    Explanation,
    ExamResult,
    ExplanationScored,
)


@dataclass(frozen=True)
class Record:
    """One row to write, and what cleaning and the card's counts need to know about it."""

    row: dict[str, Any]
    # What the row is about (a problem's question, a coach transcript) and its other texts:
    # duplicates are judged on them (coevo.export.clean).
    unit: str
    rest: tuple[str, ...]
    # The problems the row is about, the one it is counted under first.
    problems: tuple[ProblemInfo, ...]
    # Texts checked for contamination besides the problems' questions.
    texts: tuple[str, ...] = ()
    # Whether a re-worded unit makes a near duplicate (not for transcripts, which are episodes).
    near: bool = True


@dataclass(frozen=True)
class KindContext:
    """What a kind's rows are made from: the selected view of the run, the agent, the batch size."""

    view: RunView
    # The agent whose data it is (a training kind's Solver or Generator), or whose messages are
    # kept (lbt, coach); None = every agent's.
    agent: str | None
    batch_size: int

    def trainer_settings(self, trainer_kind: str) -> Any:
        """The run's own settings for this trainer kind and agent, else the kind's defaults."""
        from coevo.trainers.registry import TRAINERS

        config = self.view.run.config
        args = next((t.args for t in config.trainers if t.kind == trainer_kind and t.agent == self.agent), {})
        try:
            return TRAINERS[trainer_kind].config_class(**args)
        except ValidationError as exc:
            raise ExportError(f"the run's {trainer_kind} trainer settings are not valid: {exc}") from None

    def request(self, trainer_kind: str) -> RowRequest:
        """What the training run after the last selected round would ask the builder for."""
        run, window = self.view.run, self.view.window
        assert self.agent is not None
        _, levels = run.config.curriculum_space()
        rng = training_rng(run.config.seed, trainer_kind, window[-1])
        return RowRequest(run.store, run.run_id, self.agent, window, rng, levels, self.view.selection())


@dataclass(frozen=True)
class Column:
    name: str
    type: Callable[[Any], pa.DataType]  # given the pyarrow module (imported only when writing)
    meaning: str


@dataclass(frozen=True)
class Kind:
    name: str
    # What one row is (the card's opening line).
    summary: str
    # How the rows are made, for the card.
    method: str
    columns: tuple[Column, ...]
    records: Callable[[KindContext], Iterator[Record]]
    # How to train on it (a Python snippet for the card); empty for the kinds TRL does not read.
    usage: str = ""
    # The roles whose agent's data it is, the first preferred; () = no agent needed.
    roles: tuple[str, ...] = ()
    # The coevo trainer kind whose settings and random generator the rows follow.
    trainer_kind: str | None = None
    # Whether rows hold text the agents' models wrote (attempts, rationales, reports), whose
    # licence is the model's.
    model_text: bool = True
    # Whether `--agent` keeps only the messages that agent sent (a Teacher's, a Coach's).
    by_sender: bool = False

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([(c.name, c.type(pa)) for c in self.columns])


def _messages(pa: Any) -> pa.DataType:
    return pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def _string(pa: Any) -> pa.DataType:
    return pa.string()


def _strings(pa: Any) -> pa.DataType:
    return pa.list_(pa.string())


def _int(pa: Any) -> pa.DataType:
    return pa.int32()


def _float(pa: Any) -> pa.DataType:
    return pa.float64()


def _bool(pa: Any) -> pa.DataType:
    return pa.bool_()


def _round_stats(pa: Any) -> pa.DataType:
    return pa.list_(
        pa.struct(
            [
                ("round", pa.int32()),
                ("attempts", pa.int32()),
                ("correct", pa.int32()),
                ("success_rate", pa.float64()),
                ("zone", pa.string()),
                ("in_curriculum", pa.bool_()),
            ]
        )
    )


def _scores(pa: Any) -> pa.DataType:
    return pa.struct([(item, pa.float64()) for item in INSTRUMENT_ITEMS])


# --- rows ---------------------------------------------------------------------------------------


def _curriculum(ctx: KindContext) -> Iterator[Record]:
    view = ctx.view
    run = view.run
    for batch in run.store.iter_problems(run.run_id, ctx.batch_size, created_until=view.as_of):
        for p in batch:
            if p.problem_id not in view.selected:
                continue
            info = view.infos[p.problem_id]
            rounds = [
                {
                    "round": s.round,
                    "attempts": s.attempts,
                    "correct": s.correct,
                    "success_rate": s.correct / s.attempts if s.attempts else None,
                    "zone": outcome_zone(s.correct, s.attempts),
                    "in_curriculum": s.in_curriculum,
                }
                for _, s in sorted(info.rounds.items())
            ]
            row = {
                "id": p.problem_id,
                "question": p.question,
                "answer": p.answer,
                "solution": p.solution,
                "skills": list(p.skills),
                "difficulty": json.dumps(p.difficulty, sort_keys=True),
                "source": p.source,
                "author": p.author,
                "parent_id": p.parent_id,
                "in_curriculum": info.in_curriculum,
                "first_round": info.first_round,
                "last_round": info.last_round,
                "attempts": info.attempts,
                "correct": info.correct,
                "success_rate": info.success_rate,
                "zone": info.zone,
                "rounds": rounds,
                "policy_versions": sorted(info.policies),
            }
            yield Record(row, p.question, (p.answer,), (info,))


def _builder_rows(ctx: KindContext, trainer_kind: str) -> list[dict[str, Any]]:
    """The rows coevo's `trainer_kind` trainer would build for the selection (its own builder)."""
    from coevo.trainers.registry import TRAINERS

    return TRAINERS[trainer_kind].rows(ctx.request(trainer_kind), ctx.trainer_settings(trainer_kind))


def _about_question(ctx: KindContext, row: dict[str, Any], rest: tuple[str, ...]) -> Record:
    # A Solver prompt's last message is the problem's question, exactly as stored.
    question = row["prompt"][-1]["content"]
    info = ctx.view.by_question.get(question)
    if info is None:
        return Record(row, question, rest, (), texts=(question,))
    return Record(row, question, rest, (info,))


def _sft(ctx: KindContext) -> Iterator[Record]:
    for row in _builder_rows(ctx, "sft"):
        yield _about_question(ctx, row, (row["completion"][-1]["content"],))


def _dpo(ctx: KindContext) -> Iterator[Record]:
    for row in _builder_rows(ctx, "socratic_solver_dpo"):
        yield _about_question(ctx, row, (row["chosen"][-1]["content"], row["rejected"][-1]["content"]))


def _lbt_dpo(ctx: KindContext) -> Iterator[Record]:
    for row in _builder_rows(ctx, "lbt_teacher_dpo"):
        yield _about_question(ctx, row, (row["chosen"][-1]["content"], row["rejected"][-1]["content"]))


def _generator(ctx: KindContext) -> Iterator[Record]:
    view = ctx.view
    for row in _builder_rows(ctx, "socratic_generator_sft"):
        completion = row["completion"][-1]["content"]
        try:
            question = parse_problem_draft(completion).question
        except DraftError:  # not a completion the builder writes; counted under no problem
            question = completion
        target = view.by_question.get(question)
        source = view.infos.get(target.parent_id) if target is not None and target.parent_id else None
        problems = tuple(p for p in (target, source) if p is not None)
        prompt = row["prompt"][-1]["content"]
        yield Record(row, question, (prompt, completion), problems, texts=() if problems else (prompt,))


def _kto(ctx: KindContext) -> Iterator[Record]:
    view = ctx.view
    assert ctx.agent is not None
    for a in attempt_records(view.run.store, view.run.run_id, ctx.agent, view.selection()):
        row = {
            "prompt": solver_messages(a.question),
            "completion": [{"role": "assistant", "content": a.response}],
            "label": a.correct,
        }
        info = view.infos.get(a.problem_id)
        yield Record(row, a.question, (a.response, str(a.correct)), (info,) if info else ())


def _grpo(ctx: KindContext) -> Iterator[Record]:
    view = ctx.view
    for pid, info in view.infos.items():
        if pid in view.selected and info.in_curriculum:
            row = {"prompt": solver_messages(info.question), "answer": info.answer}
            yield Record(row, info.question, (info.answer,), (info,))


def _keeps_message(ctx: KindContext, message: Message) -> bool:
    view = ctx.view
    policies = view.filters.policies
    return (
        message.round in view.window
        and (ctx.agent is None or message.sender == ctx.agent)
        and (policies is None or message.policy_version in policies)
    )


def _lbt(ctx: KindContext) -> Iterator[Record]:
    view = ctx.view
    run = view.run

    def keep(explanation: Explanation) -> bool:
        return _keeps_message(ctx, explanation) and explanation.problem_id in view.selected

    events = run.store.iter_events(run.run_id, EXPLANATION_EVENTS, ctx.batch_size, until_round=view.as_of)
    for explanation, event in scored_explanations(events, keep):
        info = view.infos.get(explanation.problem_id)
        question = info.question if info is not None else explanation.question
        row = {
            "explanation_id": explanation.id,
            "problem_id": explanation.problem_id,
            "problem": question,
            "answer": info.answer if info is not None else None,
            "rationale": explanation.rationale,
            "rationale_answer": explanation.answer,
            "correct": event.correct,
            "lbt_score": event.lbt_score,
            "score": event.score,
            "weight": event.weight,
            "students": event.students,
            "round": explanation.round,
            "teacher": explanation.sender,
            "policy_version": explanation.policy_version,
        }
        yield Record(row, question, (explanation.rationale,), (info,) if info else ())


def _coach(ctx: KindContext) -> Iterator[Record]:
    view = ctx.view
    run = view.run
    # A report brings the several messages it reviewed along: fewer reports per batch.
    per_batch = max(1, ctx.batch_size // 8)
    for batch in run.store.iter_events(run.run_id, ["CoachReport"], per_batch, until_round=view.as_of):
        reports = [r for r in batch if isinstance(r, CoachReport) and _keeps_message(ctx, r)]
        linked = run.store.events_by_id(run.run_id, (i for r in reports for i in r.transcript_ids))
        for report in reports:
            # The Coach read its inbox in this order (`transcript_ids`), as one transcript.
            messages = cast(list[Message], [linked[i] for i in report.transcript_ids if i in linked])
            about = dict.fromkeys(m.problem_id for m in messages if isinstance(m, _ABOUT_A_PROBLEM))
            problems = tuple(view.infos[pid] for pid in about if pid in view.infos)
            if view.filters.by_problem and not any(p.problem_id in view.selected for p in problems):
                continue
            text = transcript(messages)
            row = {
                "report_id": report.id,
                "round": report.round,
                "episode": report.episode,
                "coach": report.sender,
                "policy_version": report.policy_version,
                "transcript": text,
                "scores": {item: report.scores.get(item) for item in INSTRUMENT_ITEMS},
                "highlights": report.highlights,
                "missed": report.missed,
                "suggestions": report.suggestions,
                "parse_error": report.parse_error,
            }
            report_text = json.dumps(
                [report.scores, report.highlights, report.missed, report.suggestions], sort_keys=True
            )
            yield Record(row, text, (report_text,), problems, texts=() if problems else (text,), near=False)


# --- the kinds ----------------------------------------------------------------------------------

_PROMPT = Column("prompt", _messages, "the Solver's chat prompt: its system prompt and the question")
_SOLVERS = ("solver", "student")

_SFT_USAGE = """from trl import SFTConfig, SFTTrainer

trainer = SFTTrainer(model=MODEL, args=SFTConfig(output_dir="out"), train_dataset=ds)
trainer.train()"""

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "curriculum",
            "one problem the society posed, refined, proposed or examined with, and how it fared",
            "Every problem the run stored (posed by a Teacher, refined from a failed problem, proposed "
            "by a Generator and accepted, or set in an exam) that the selected rounds touched, with "
            "its reference answer and solution, its provenance, and the attempts at it per round "
            "(every agent's, by the selected policies). `in_curriculum` is the problem's curriculum "
            "flag as the last selected round left it (from the run's curriculum history, exact after "
            "a resume); a problem joins the curriculum when the Solver's success rate lies in the "
            "run's success band.",
            (
                Column("id", _string, "the problem's id in the run (a hash of question and answer)"),
                Column("question", _string, "the problem"),
                Column("answer", _string, "its reference answer"),
                Column("solution", _string, "its reference solution, when known"),
                Column("skills", _strings, "its skills"),
                Column("difficulty", _string, "its difficulty components, as a JSON object"),
                Column("source", _string, "procedural, refined, generated, dataset, seed or synthesized"),
                Column("author", _string, "who wrote it (an agent, or the procedural generator)"),
                Column("parent_id", _string, "the problem it was refined or proposed from"),
                Column("in_curriculum", _bool, "in the curriculum as of the last selected round"),
                Column("first_round", _int, "the first selected round that touched it"),
                Column("last_round", _int, "the last selected round that touched it"),
                Column("attempts", _int, "attempts at it in the selected rounds"),
                Column("correct", _int, "correct attempts among them"),
                Column("success_rate", _float, "correct / attempts (null when unattempted)"),
                Column("zone", _string, "mastered (all correct), learning, too_hard (none) or unattempted"),
                Column("rounds", _round_stats, "per round: attempts, correct, success rate, zone, flag"),
                Column("policy_versions", _strings, "the policy versions whose attempts are counted"),
            ),
            _curriculum,
            model_text=False,
        ),
        Kind(
            "sft",
            "a Solver prompt and a verified-correct completion (rejection-sampling SFT)",
            "`coevo.trainers.datasets.correct_sft_rows`, the builder of coevo's `sft` trainer: per "
            "curriculum problem, up to `max_per_problem` distinct attempts the verifier graded "
            "correct, or its reference solution (ending with the answer line) when no attempt was.",
            (_PROMPT, Column("completion", _messages, "a correct attempt, or the reference solution")),
            _sft,
            _SFT_USAGE,
            _SOLVERS,
            "sft",
        ),
        Kind(
            "dpo",
            "a Solver prompt with a preferred (correct) and a rejected (incorrect) completion",
            "`coevo.trainers.datasets.solver_dpo_rows`, the builder of the Solver's Socratic-Zero DPO "
            "trainer: per curriculum problem with an incorrect attempt, up to "
            "`max_pairs_per_problem` pairs drawn from (correct attempt, incorrect attempt), with the "
            "reference solution as the chosen side when no attempt was correct. The random "
            "generator is that of the training run after the last selected round, so these are the "
            "pairs the trainer built (for a window starting at round 0, where it replays nothing).",
            (
                _PROMPT,
                Column("chosen", _messages, "a correct attempt, or the reference solution"),
                Column("rejected", _messages, "an incorrect attempt at the same problem"),
            ),
            _dpo,
            """from trl import DPOConfig, DPOTrainer

trainer = DPOTrainer(model=MODEL, args=DPOConfig(output_dir="out"), train_dataset=ds)
trainer.train()""",
            _SOLVERS,
            "socratic_solver_dpo",
        ),
        Kind(
            "lbt_dpo",
            "a Teacher's explain prompt with a preferred and a rejected rationale it wrote for it",
            "`coevo.trainers.datasets.lbt_teacher_dpo_rows`, the builder of Learning by Teaching's M2 "
            "(`lbt_teacher_dpo`): per problem, pairs of the Teacher's rationales written for the same "
            "prompt whose scores (w * correctness + (1 - w) * the Students' exam accuracy) differ by "
            "more than `score_gap`, at most `max_pairs_per_problem`, the prompt and both rationales "
            "exactly as the Teacher was given and wrote them (a model Teacher's only).",
            (
                Column("prompt", _messages, "the Teacher's chat prompt: its explain prompt and the problem"),
                Column("chosen", _messages, "the rationale with the higher score"),
                Column("rejected", _messages, "the rationale with the lower score"),
            ),
            _lbt_dpo,
            """from trl import DPOConfig, DPOTrainer

trainer = DPOTrainer(model=MODEL, args=DPOConfig(output_dir="out"), train_dataset=ds)
trainer.train()""",
            ("teacher",),
            "lbt_teacher_dpo",
        ),
        Kind(
            "grpo",
            "a Solver prompt and the reference answer a reward function checks completions against",
            "The curriculum's problems (flagged in the curriculum as of the last selected round) as "
            "Solver prompts, with their reference answers. GRPOTrainer passes every column but "
            "`prompt` to the reward functions as keyword arguments, so `answer` reaches them.",
            (_PROMPT, Column("answer", _string, "the reference answer (a keyword argument of rewards)")),
            _grpo,
            """from trl import GRPOConfig, GRPOTrainer
from coevo.tasks.answers import grade  # the verifier's rules: extraction + math-verify

def correct(completions, answer, **kwargs):
    return [float(grade(c[-1]["content"], a).correct) for c, a in zip(completions, answer)]

trainer = GRPOTrainer(model=MODEL, reward_funcs=correct, args=GRPOConfig(output_dir="out"), train_dataset=ds)
trainer.train()""",
            model_text=False,
        ),
        Kind(
            "kto",
            "a Solver prompt, one sampled completion, and whether the verifier graded it correct",
            "Every graded attempt of the agent at a curriculum problem (the attempts its DPO and SFT "
            "trainers read, `coevo.trainers.datasets.attempt_records`), labelled desirable when the "
            "verifier graded it correct.",
            (
                _PROMPT,
                Column("completion", _messages, "one sampled attempt"),
                Column("label", _bool, "true when the verifier graded it correct"),
            ),
            _kto,
            """from trl import KTOConfig, KTOTrainer

trainer = KTOTrainer(model=MODEL, args=KTOConfig(output_dir="out"), train_dataset=ds)
trainer.train()""",
            _SOLVERS,
        ),
        Kind(
            "generator",
            "a failed problem and attempt, and the refined problem the Generator should write, weighted",
            "`coevo.trainers.datasets.generator_sft_rows`, the builder of the Generator's value-weighted "
            "SFT: each demonstration the Teacher sent the Generator (a failed problem and attempt → "
            "the refined problem) whose refined problem was attempted, weighted by "
            "U = exp(-(s - center)^2 / (2 sigma^2)), s the Solver's success rate on the refined "
            "problem. coevo's trainer scales each row's loss by `weight`; TRL's SFTTrainer trains on "
            "it as plain SFT (ignoring the weight).",
            (
                Column("prompt", _messages, "the Generator's prompt: the failed problem and attempt"),
                Column("completion", _messages, 'the refined problem, as "Problem: ...\\nAnswer: ..."'),
                Column("weight", _float, "the Socratic-Zero value weight U in [0, 1]"),
            ),
            _generator,
            _SFT_USAGE,
            ("generator",),
            "socratic_generator_sft",
        ),
        Kind(
            "lbt",
            "a Teacher's rationale for a problem, scored by the exams of the Students it taught",
            "Learning by Teaching: each Explanation a Teacher wrote, joined with its ExplanationScored "
            "event: whether the rationale's own answer is right, its LbT score (the Students' exam "
            "accuracy after being taught with it) and its score w * correctness + (1 - w) * LbT score "
            "(LbT's M2 preference score, w the Teacher's `score_weight`, 0.5 by default; the "
            "`lbt_dpo` kind holds the pairs coevo's Teacher trainer builds from it).",
            (
                Column("explanation_id", _string, "the Explanation event's id"),
                Column("problem_id", _string, "the problem explained"),
                Column("problem", _string, "its question"),
                Column("answer", _string, "its reference answer"),
                Column("rationale", _string, "the Teacher's worked rationale"),
                Column("rationale_answer", _string, "the answer the rationale reaches"),
                Column("correct", _bool, "whether that answer is right"),
                Column("lbt_score", _float, "the Students' exam accuracy"),
                Column("score", _float, "weight * correctness + (1 - weight) * LbT score"),
                Column(
                    "weight", _float, "the weight of correctness in the score (the Teacher's score_weight)"
                ),
                Column("students", _int, "Students whose exams are counted"),
                Column("round", _int, "the round it was written in"),
                Column("teacher", _string, "the Teacher agent"),
                Column("policy_version", _string, "the Teacher's policy version"),
            ),
            _lbt,
            by_sender=True,
        ),
        Kind(
            "coach",
            "a teaching transcript and the Coach's structured report on it",
            "Each CoachReport with the transcript it reviewed, rebuilt from the messages whose ids "
            "the report lists (`transcript_ids`, in the order the Coach read them) by the Coach's own "
            "formatter (`coevo.agents.coach.transcript`).",
            (
                Column("report_id", _string, "the CoachReport event's id"),
                Column("round", _int, "its round"),
                Column("episode", _int, "its episode"),
                Column("coach", _string, "the Coach agent"),
                Column("policy_version", _string, "the Coach's policy version"),
                Column("transcript", _string, "the transcript the Coach read"),
                Column("scores", _scores, "instrument item scores (CLASS 1-7, MQI 1-3; null if not given)"),
                Column("highlights", _strings, "moments that elicited student reasoning"),
                Column("missed", _strings, "missed opportunities"),
                Column("suggestions", _strings, "suggested teacher moves"),
                Column("parse_error", _string, "why the report could not be fully read, or null"),
            ),
            _coach,
            by_sender=True,
        ),
    )
}
