"""Runs that lose nothing: `--force` deletes only what coevo created, a moved run folder resumes as
itself, resuming a finished run changes nothing, `--resume` refuses overrides that would change what
a round does, and bad input (aliases, corrupt databases, URLs, folders) gets a message, never a
traceback. That they leak nothing (secrets) is tests/society/test_secrets.py's."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from coevo.cli import main
from coevo.memory.store import Store
from coevo.society.checker import make_replay_engines
from coevo.society.config_errors import ConfigError
from coevo.society.loading import parse_config
from coevo.society.session import MARKER, RunDirError, load_snapshot, run_id_for, run_society
from tests.society.replay_society import CONFIG, replay_config


def run(config_overrides: list[str], run_dir: Path, **kwargs: object) -> None:
    config = replay_config(config_overrides)
    asyncio.run(run_society(config, run_dir, engines=make_replay_engines(config), **kwargs))  # type: ignore[arg-type]


# --- the run folder ---------------------------------------------------------------------------------


def test_force_deletes_only_what_coevo_created(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run(["schedule.rounds=1"], run_dir, resume=False)
    (run_dir / "notes.txt").write_text("mine")
    run(["schedule.rounds=1"], run_dir, resume=False, force=True)
    assert (run_dir / "notes.txt").read_text() == "mine" and (run_dir / MARKER).exists()


def test_coevo_never_writes_into_a_folder_it_did_not_create(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.yaml").write_text("my own config")
    for force in (False, True):
        with pytest.raises(RunDirError, match="holds no coevo run"):
            run(["schedule.rounds=1"], folder, resume=False, force=force)
    assert (folder / "config.yaml").read_text() == "my own config"


def test_force_refuses_the_current_folder_and_its_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    run(["schedule.rounds=1"], run_dir, resume=False)
    (run_dir / "sub").mkdir()
    for cwd in (run_dir, run_dir / "sub"):
        monkeypatch.chdir(cwd)
        with pytest.raises(RunDirError, match="current folder or a parent"):
            run(["schedule.rounds=1"], run_dir, resume=False, force=True)
    assert (run_dir / "coevo.db").exists()


def test_force_with_an_external_database_deletes_that_run_s_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    run_dir = tmp_path / "run"
    run(["schedule.rounds=2", f"memory.url={url}"], run_dir, resume=False)
    store = Store(url)
    run_id = run_id_for(run_dir)
    assert store.last_committed_round(run_id) == 1
    run(["schedule.rounds=1", f"memory.url={url}"], run_dir, resume=False, force=True)
    assert store.last_committed_round(run_id) == 0  # a fresh run, not round 2 of the old one
    assert {a.round for a in store.attempts(run_id)} == {0}


def test_a_run_folder_that_is_a_file_or_unwritable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        run(["schedule.rounds=1"], tmp_path / "file", resume=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: nothing to test here
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(RunDirError, match="cannot write"):
            run(["schedule.rounds=1"], locked / "run", resume=False)
    finally:
        locked.chmod(0o700)


def test_a_moved_run_folder_resumes_as_itself(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run(["schedule.rounds=1"], run_dir, resume=False)
    original = run_id_for(run_dir)
    moved = tmp_path / "elsewhere"
    shutil.move(run_dir, moved)
    assert run_id_for(moved) == original  # read from the folder's marker, not derived from its path
    config = load_snapshot(moved, ["schedule.rounds=2"])
    asyncio.run(run_society(config, moved, resume=True, engines=make_replay_engines(config)))
    store = Store.for_run_dir(moved)
    [only] = store.list_runs()
    assert only.id == run_id_for(moved) and store.last_committed_round(only.id) == 1


def test_a_resumed_run_reads_back_the_config_it_was_started_with(tmp_path: Path) -> None:
    # Nulls that mean something survive the snapshot: an unbounded reply edge stays unbounded.
    run_dir = tmp_path / "run"
    started = replay_config(["schedule.rounds=1", "graph.1.max_turns=null"])
    asyncio.run(run_society(started, run_dir, resume=False, engines=make_replay_engines(started)))
    resumed = load_snapshot(run_dir, [])
    assert resumed.graph[1].max_turns is None
    assert resumed.model_dump() == started.model_dump()


def test_resuming_a_finished_run_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run(["schedule.rounds=1"], run_dir, resume=False)
    store = Store.for_run_dir(run_dir)
    before = len(store.events(run_id_for(run_dir)))
    config = load_snapshot(run_dir, [])
    outcome = asyncio.run(run_society(config, run_dir, resume=True, engines=make_replay_engines(config)))
    assert outcome.already_finished and outcome.reports == []
    assert len(store.events(run_id_for(run_dir))) == before
    assert sum(e.type == "RunFinished" for e in store.events(run_id_for(run_dir))) == 1


def test_resume_refuses_overrides_that_change_what_a_round_does_and_records_the_others(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    run(["schedule.rounds=1"], run_dir, resume=False)
    with pytest.raises(RunDirError, match=r"schedule.attempts_per_problem=2.*accepts: schedule.rounds"):
        load_snapshot(run_dir, ["schedule.attempts_per_problem=2"])
    overrides = ["schedule.rounds=2", "schedule.max_concurrency=2"]
    config = load_snapshot(run_dir, overrides)
    asyncio.run(
        run_society(config, run_dir, resume=True, engines=make_replay_engines(config), overrides=overrides)
    )
    store = Store.for_run_dir(run_dir)
    assert store.get_state(run_id_for(run_dir), "resume_overrides") == [
        {"after_round": 0, "overrides": overrides}
    ]
    assert load_snapshot(run_dir, []).schedule.rounds == 2  # the snapshot says what the run now is


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("name: x\nagents: &a {t: *a}\n", "recursive alias"),
        (
            "name: x\n"
            + "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(
                f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True)
            )
            + "agents: {t: *f}\n",
            "expands to more than 100,000 values",
        ),
        ("name: x\nmemory: {url: 'not a url at all'}\n" + CONFIG.split("\n", 2)[2], "not a database URL"),
    ],
    ids=["recursive-alias", "alias-bomb", "memory-url"],
)
def test_bad_yaml_and_urls_are_config_errors(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_config(text, "bad.yaml")


def test_a_corrupt_database_is_named_and_does_not_hide_other_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["schedule.rounds=1"], tmp_path / "good", resume=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "coevo.db").write_bytes(b"this is not sqlite" * 100)
    (tmp_path / "bad" / MARKER).write_text('{"run_id": "bad-1"}')
    (tmp_path / "bad" / "config.yaml").write_text(CONFIG)
    assert main(["runs", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "unreadable" in out and str(tmp_path / "bad" / "coevo.db") in out
    assert main(["run", "--resume", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "coevo.db" in err and "Traceback" not in err
