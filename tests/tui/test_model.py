"""The TUI's pure parts (no screen): the run model's aggregates and bounds, filters, paging older
events back from the database, inert text, and a description of every event type."""

from __future__ import annotations

from pathlib import Path

from coevo.memory.journal import EventCursor, JournalEntry
from coevo.memory.store import Store
from coevo.messages import (
    LIFECYCLE_CLASSES,
    MESSAGE_CLASSES,
    AdapterLoaded,
    AttemptGraded,
    CoachReport,
    Demonstration,
    EvalFinished,
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
    RunFinished,
    SolutionSubmitted,
    TrainingFinished,
    TrainingStarted,
    TrainingStep,
)
from coevo.society.session import run_id_for
from coevo.tui.describe import fields, searchable, summary, texts
from coevo.tui.model import INDEX_CAP, MessageFilter, RunModel
from coevo.tui.source import TargetError, open_target, page_before
from coevo.tui.text import inert, one_line
from tests.tui.fixture_run import RUN_ID


def _entries(run_dir: Path) -> list[JournalEntry]:
    store = Store.for_run_dir(run_dir)
    try:
        return EventCursor(store, RUN_ID).poll(100_000)
    finally:
        store.close()


def test_inert_text_shows_control_sequences_as_escapes() -> None:
    hostile = "a\x1b[31mred\x1b[0m \x1b]0;title\x07 \x9b2J \u202egnp.exe\tb\nc"
    shown = inert(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown and "\u202e" not in shown
    assert shown == "a\\x1b[31mred\\x1b[0m \\x1b]0;title\\x07 \\x9b2J \\u202egnp.exe    b\nc"
    assert one_line("x\n\n  y [bold]z[/bold]", 8) == "x y [bo…"


SAMPLES = [
    ProblemPosed(
        problem_id="p", question="What is 2 + 2?", skills=["add_no_carry"], difficulty={"digits": 1}
    ),
    SolutionSubmitted(problem_id="p", attempt_index=0, response="The answer is 4."),
    AttemptGraded(problem_id="p", attempt_index=0, extracted_answer="4", correct=True, reward=1.0),
    ProblemRefined(
        parent_problem_id="p",
        problem_id="q",
        question="2 + 3?",
        answer="5",
        success_rate=0.5,
        zone="learning",
    ),
    Demonstration(
        source_problem_id="p", failed_response="5", target_problem_id="q", target_question="2 + 3?"
    ),
    ProblemProposed(source_problem_id="p", parse_error="no answer", raw="hmm"),
    ProposalReviewed(proposal_id="x", accepted=False, reason="wrong answer"),
    Explanation(
        problem_id="p", rationale="Add.", answer="4", exam=[ExamItem(problem_id="e", question="1+1?")]
    ),
    ExamResult(explanation_id="x", problem_id="p", exam_problem_ids=["e"], correct=1, total=3),
    ExplanationScored(
        explanation_id="x", problem_id="p", correct=True, lbt_score=0.5, score=0.75, students=3
    ),
    CoachReport(transcript_ids=["x"], scores={"explanations": 2.0}, highlights=["clear"]),
    RoundStarted(episodes=3),
    RoundFinished(attempts=4, correct=2, accuracy=0.5, metrics={"teacher.refinements": 1.0}),
    TrainingStarted(trainer="sft", agent="solver", examples=8),
    TrainingStep(trainer="sft", agent="solver", step=3, max_steps=8, metrics={"loss": 0.5}),
    TrainingFinished(trainer="sft", agent="solver", ok=False, new_version=None, error="out of memory"),
    AdapterLoaded(agent="solver", version="v1", path="adapters/solver/v1"),
    EvalFinished(agent="solver", policy="v1", dataset="heldout", n=10, accuracy=0.3, ci_low=0.1, ci_high=0.6),
    RunFinished(rounds=3),
]


def test_every_event_type_is_described() -> None:
    assert {s.type for s in SAMPLES} == {
        c.model_fields["type"].default for c in (*MESSAGE_CLASSES, *LIFECYCLE_CLASSES)
    }
    for event in SAMPLES:
        assert summary(event), event.type
        assert all(isinstance(value, str) and value for _, value in fields(event))
        assert all(isinstance(text, str) for _, text in texts(event))
        assert event.type.lower() in searchable(event)
    grade = SAMPLES[2]
    assert isinstance(grade, AttemptGraded)
    assert ("extracted answer", "4") in fields(SAMPLES[1], grade) and ("grade", "correct") in fields(grade)


def test_a_training_under_way_shows_its_last_step() -> None:
    model = RunModel()
    started = TrainingStarted(trainer="sft", agent="solver", examples=8)
    step = TrainingStep(trainer="sft", agent="solver", step=3, max_steps=8, metrics={"loss": 0.5})
    model.ingest(
        [JournalEntry(row_id=i + 1, provisional=True, event=e) for i, e in enumerate((started, step))]
    )
    assert model.training_now["solver"] is started and model.training_step["solver"] is step
    finished = TrainingFinished(trainer="sft", agent="solver", ok=True, new_version="v1")
    model.ingest([JournalEntry(row_id=3, provisional=True, event=finished)])
    assert not model.training_now and not model.training_step


def test_requests_in_flight_are_messages_an_agent_has_not_answered_yet() -> None:
    model = RunModel()
    model.replies_expected = {"solver": frozenset({"ProblemPosed"})}
    posed = ProblemPosed(problem_id="p", question="1+1?", sender="teacher", recipients=["solver"], id="e1")
    model.ingest([JournalEntry(row_id=1, provisional=True, event=posed)])
    assert model.waiting["solver"] == {"e1"}
    answer = SolutionSubmitted(
        problem_id="p",
        attempt_index=0,
        response="2",
        sender="solver",
        recipients=["teacher"],
        in_reply_to=["e1"],
    )
    model.ingest([JournalEntry(row_id=2, provisional=True, event=answer)])
    assert model.waiting["solver"] == set() and "teacher" not in model.waiting  # teacher answers nothing here


def test_the_model_adds_up_a_run(fixed_run: Path) -> None:
    entries = _entries(fixed_run)
    model = RunModel()
    model.ingest(entries)
    assert model.events == len(entries) and model.last_row_id == entries[-1].row_id
    finished = [e.event for e in entries if isinstance(e.event, RoundFinished)]
    assert sorted(model.rounds) == [0, 1, 2]
    for done in finished:
        stats = model.rounds[done.round]
        assert (stats.attempts, stats.correct) == (done.attempts, done.correct)
        # Zones: every problem graded that round is in exactly one of them.
        assert sum(stats.zone_sizes().values()) == done.attempts // 4
        assert stats.problems == {}  # folded away once the round finished
    graded = sum(1 for e in entries if isinstance(e.event, AttemptGraded))
    assert model.unsent[("teacher", "AttemptGraded")] == graded
    posed = sum(1 for e in entries if isinstance(e.event, ProblemPosed))
    assert model.edge_counts[("teacher", "solver", "ProblemPosed")] == posed
    assert model.policies["solver"] == "v3"  # the last adapter loaded
    series = model.series()
    assert [x for x, _ in series["accuracy and reward"]["accuracy"]] == [0, 1, 2]
    assert [round(y, 3) for _, y in series["training loss"]["solver"]] == [0.69, 0.57, 0.45]
    assert series["tokens per second"]["tokens/s"][0][1] == finished[0].tokens / 2.0
    assert set(series["acceptance of refined/generated problems"]) == {"refined (teacher)"}
    # Each attempt is matched with its grade (the stream shows it beside the attempt).
    solution = next(e.event for e in entries if isinstance(e.event, SolutionSubmitted))
    grade = model.grade_of(solution)
    assert grade is not None and grade.problem_id == solution.problem_id
    assert model.solution_of(grade) == solution


def test_memory_stays_bounded_however_long_the_run() -> None:
    model = RunModel(window=50)
    row = 0
    for index in range(2 * INDEX_CAP):  # more distinct problems than any index keeps
        events = [
            ProblemPosed(problem_id=f"p{index}", question="?", sender="teacher", recipients=["solver"]),
            SolutionSubmitted(problem_id=f"p{index}", attempt_index=0, response="1", sender="solver"),
            AttemptGraded(
                problem_id=f"p{index}",
                attempt_index=0,
                solver="solver",
                extracted_answer="1",
                correct=True,
                reward=1.0,
                round=index // 100,
            ),
        ]
        if index % 100 == 99:
            events.append(RoundFinished(round=index // 100, attempts=100, correct=100, accuracy=1.0))
        entries = [JournalEntry(row + i, False, e) for i, e in enumerate(events, start=1)]
        row += len(entries)
        model.ingest(entries)
        model.filtered(MessageFilter(search="x"))  # fills the search cache
    assert model.events == row and len(model.window) == 50
    assert max(len(model.grades), len(model.solutions), len(model.questions)) == INDEX_CAP
    assert len(model._search_cache) <= INDEX_CAP
    # A finished round keeps its zone sizes, not its problems.
    assert all(not stats.problems and stats.zones == {"mastered": 100} for stats in model.rounds.values())


def test_filters_pick_agent_type_round_verdict_and_text(fixed_run: Path) -> None:
    model = RunModel()
    model.ingest(_entries(fixed_run))
    graded = model.filtered(MessageFilter(type="AttemptGraded", correct=False))
    assert graded and all(isinstance(e.event, AttemptGraded) and not e.event.correct for e in graded)
    attempts = model.filtered(MessageFilter(agent="solver", round=1, correct=True))
    assert attempts and all(e.event.round == 1 and e.event.sender == "solver" for e in attempts)
    assert all(model.grade_of(e.event).correct for e in attempts)  # type: ignore[arg-type, union-attr]
    found = model.filtered(MessageFilter(search="I AM NOT SURE"))
    assert found and all("i am not sure" in e.event.response.lower() for e in found)  # type: ignore[union-attr]
    newest_first = [e.row_id for e in model.filtered(MessageFilter())]
    assert newest_first == sorted(newest_first, reverse=True)


def test_older_pages_come_back_from_the_database(fixed_run: Path) -> None:
    entries = _entries(fixed_run)
    store = Store.for_run_dir(fixed_run)
    model = RunModel()
    model.ingest(entries)
    flt = MessageFilter(agent="solver")
    expected = [e.row_id for e in reversed(entries) if model.matches(e, flt)]
    pages: list[int] = []
    before = entries[-1].row_id + 1
    while before:
        page, before = page_before(store, RUN_ID, before, lambda e: model.matches(e, flt), 7)
        assert len(page) <= 7
        pages += [e.row_id for e in page]
        if not page:
            break
    assert pages == expected
    typed, _ = page_before(store, RUN_ID, 10_000, lambda e: True, 5, types=["RoundFinished"])
    assert [e.event.round for e in typed] == [2, 1, 0]
    store.close()


def test_targets_are_run_directories_or_urls(fixed_run: Path, tmp_path: Path) -> None:
    by_dir = open_target(str(fixed_run))
    assert by_dir.run_id == RUN_ID and by_dir.resume_hint() == f"coevo run --resume {fixed_run}"
    by_dir.close()
    by_url = open_target(f"sqlite:///{fixed_run / 'coevo.db'}")
    assert by_url.run_id == RUN_ID and by_url.resume_hint() == "coevo run --resume RUN_DIR"
    by_url.close()
    for bad in (str(tmp_path / "nothing"), f"sqlite:///{tmp_path / 'none.db'}", "not a url://x"):
        try:
            open_target(bad)
        except TargetError as exc:
            assert str(exc)
        else:
            raise AssertionError(f"{bad} opened")
    assert not (tmp_path / "none.db").exists()  # a mistyped path leaves no empty database
    assert run_id_for(fixed_run) != RUN_ID  # the fixed run has its own id: picked as the only run


def test_ungraded_attempts_are_shown_apart_from_the_accuracy() -> None:
    model = RunModel()
    right = AttemptGraded(problem_id="p", attempt_index=0, extracted_answer="4", correct=True, reward=1.0)
    lost = AttemptGraded(
        problem_id="p",
        attempt_index=1,
        extracted_answer=None,
        correct=False,
        reward=0.0,
        failure="timeout",
        graded=False,
        detail="the grade ran past its 5 s limit",
    )
    model.ingest([JournalEntry(row_id=i + 1, provisional=True, event=e) for i, e in enumerate((right, lost))])
    stats = model.rounds[0]
    assert (stats.attempts, stats.correct, stats.ungraded) == (1, 1, 1)
    assert stats.zone_sizes() == {"mastered": 1}  # the one verdict decides the zone
    assert summary(lost) == "#1 ungraded (timeout): the grade ran past its 5 s limit"
    assert ("grade", "ungraded") in fields(lost) and ("why ungraded", lost.detail) in fields(lost)
    assert (
        model.matches(JournalEntry(row_id=2, provisional=True, event=lost), MessageFilter(correct=False))
        is False
    )
    done = RoundFinished(attempts=1, correct=1, accuracy=1.0, ungraded=1, tokens=10, seconds=1.0)
    assert summary(done) == "accuracy 100.0% (1/1), 1 ungraded, 10 tokens in 1.0 s"
