"""The memory's streaming reads export uses: batches of problems, attempts and events in stored
order (the same rows the list reads return), events by id, and attempt counts per problem, round
and policy."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from coevo.memory.errors import StoreError
from coevo.memory.store import Store
from coevo.society.session import run_id_for


def test_streaming_reads_match_the_list_reads(runs: dict[str, Path]) -> None:
    store = Store.for_run_dir(runs["socratic_zero"])
    run_id = run_id_for(runs["socratic_zero"])
    batches = list(store.iter_attempts(run_id, batch_size=100))
    assert max(len(b) for b in batches) == 100 and len(batches) > len(store.attempts(run_id)) / 100
    assert [a.id for b in batches for a in b] == [a.id for a in store.attempts(run_id)]
    assert [a.id for b in store.iter_attempts(run_id, 7, until_round=0) for a in b] == [
        a.id for a in store.attempts(run_id, rounds=[0])
    ]
    assert [p.id for b in store.iter_problems(run_id, 9) for p in b] == [p.id for p in store.problems(run_id)]
    first = [p.problem_id for b in store.iter_problems(run_id, created_until=0) for p in b]
    assert first == [p.problem_id for p in store.problems(run_id) if p.round_created == 0]
    events = [e for b in store.iter_events(run_id, batch_size=50) for e in b]
    assert events == store.events(run_id)
    demos = [e for b in store.iter_events(run_id, ["Demonstration"], 8, until_round=0) for e in b]
    assert demos == [e for e in store.events(run_id, types=["Demonstration"]) if e.round == 0]
    some = [e.id for e in events[::7]]
    assert store.events_by_id(run_id, some) == {e.id: e for e in events[::7]}
    with pytest.raises(StoreError, match="batch_size"):
        next(iter(store.iter_problems(run_id, 0)))


def test_attempt_counts_group_by_problem_round_and_policy(runs: dict[str, Path]) -> None:
    store = Store.for_run_dir(runs["demo"])
    run_id = run_id_for(runs["demo"])
    attempts = store.attempts(run_id)
    expected = Counter((a.problem_id, a.round, a.policy_version) for a in attempts)
    right = Counter((a.problem_id, a.round, a.policy_version) for a in attempts if a.correct)
    counts = store.attempt_counts(run_id)
    assert {(p, r, v): n for p, r, v, n, _ in counts} == expected
    assert {(p, r, v): c for p, r, v, _, c in counts if c} == right
    assert {r for _, r, *_ in store.attempt_counts(run_id, until_round=0)} == {0}
