"""The dataset card: README.md with the Hub's YAML header (configs and data files, licence, task
categories, size category, column types) and a body generated from the run — its society, models
and policy versions, how the rows were made, the selection, counts per skill, zone, round and
source, the cleaning figures, and the licences of what the data derives from.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from coevo.export.clean import NEAR_JACCARD, NGRAM, Decontaminator
from coevo.export.kinds import Kind, Record
from coevo.export.selection import ProblemInfo, RunView

if TYPE_CHECKING:
    import pyarrow as pa

# Licences of what exported problems can derive from: (name in the card, Hub licence id).
PROCEDURAL = ("Apache-2.0 (written by coevo's procedural generator; coevo is Apache-2.0)", "apache-2.0")
DATASET_LICENCES: dict[str, tuple[str, str]] = {
    "gsm8k": ("MIT (GSM8K, github.com/openai/grade-school-math)", "mit"),
    "mathdial": ("CC BY-SA 4.0 (MathDial, github.com/eth-nlped/mathdial)", "cc-by-sa-4.0"),
}
MODEL_LICENCES: dict[str, tuple[str, str]] = {
    "builtin:smollm2-135m-instruct": ("Apache-2.0 (SmolLM2-135M-Instruct, HuggingFaceTB)", "apache-2.0"),
}
UNKNOWN = "unknown"
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


@dataclass
class Counts:
    """Rows per skill, zone, round and source of the problem each row is about (its first)."""

    view: RunView
    rows: int = 0
    skill: Counter[str] = field(default_factory=Counter)
    zone: Counter[str] = field(default_factory=Counter)
    round: Counter[str] = field(default_factory=Counter)
    source: Counter[str] = field(default_factory=Counter)
    # Licences of what rows derive from (problem sources, and the models that wrote text) -> rows.
    origins: Counter[tuple[str, str]] = field(default_factory=Counter)
    # The licences of the run's models' text.
    models: list[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        engines = self.view.run.config.engines.values()
        self.models = [
            MODEL_LICENCES.get(m, (f"unknown (text written by {m}: its licence's terms apply)", UNKNOWN))
            for m in sorted({e.model for e in engines})
        ]

    def add(self, record: Record, model_text: bool) -> None:
        self.rows += 1
        if not record.problems:
            for counter in (self.skill, self.zone, self.round, self.source):
                counter["(none)"] += 1
        else:
            info = record.problems[0]
            self.skill.update(info.skills or ["(none)"])
            self.zone[info.zone] += 1
            self.round[str(info.first_round)] += 1
            self.source[info.source] += 1
        licences = set(self.models) if model_text else set()
        for info in record.problems:
            for problem in (info, self.view.origin(info)):
                licences.update(self._licences(problem))
        self.origins.update(licences)

    def _licences(self, info: ProblemInfo) -> list[tuple[str, str]]:
        if info.split is not None:
            return [PROCEDURAL]
        if info.source == "dataset":
            name = str(info.dataset or "")
            return [DATASET_LICENCES.get(name, (f"unknown (dataset {name!r}: check its licence)", UNKNOWN))]
        if info.source == "seed":
            return [("unknown (problems written in the run's config: its author's terms)", UNKNOWN)]
        return self.models  # written by an agent's model: a Teacher's or a Generator's


def hub_licence(ids: Iterable[str]) -> str:
    """One Hub licence id for data mixing these: unknown wins, then share-alike, else the most
    permissive that covers all (MIT material may be redistributed in Apache-2.0 data with its notice)."""
    found = set(ids)
    for licence in (UNKNOWN, "cc-by-sa-4.0"):
        if licence in found:
            return licence
    return "mit" if found == {"mit"} else "apache-2.0"


@dataclass
class CardFacts:
    kind: Kind
    view: RunView
    agent: str | None
    settings: Mapping[str, Any] | None
    counts: Counts
    exact_duplicates: int
    near_duplicates: int
    keep_duplicates: bool
    decontaminator: Decontaminator
    removed: Counter[str]
    data_files: str
    data_bytes: int
    schema: pa.Schema
    command: str


def _header(facts: CardFacts) -> dict[str, Any]:
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    rows = facts.counts.rows
    size = next((name for limit, name in SIZE_CATEGORIES if rows < limit), "1M<n<10M")
    header: dict[str, Any] = {
        "license": hub_licence(licence for _, licence in facts.counts.origins),
        "task_categories": ["text-generation"],
        "language": ["en"],
        "tags": ["coevo", "synthetic", "math", facts.kind.name],
        "size_categories": [size],
        "pretty_name": f"coevo {facts.view.run.config.name}: {facts.kind.name}",
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": facts.data_files}]}],
    }
    # Column types, so every format (JSON Lines too) loads with the same features.
    splits = SplitDict()
    splits.add(SplitInfo(name="train", num_bytes=facts.data_bytes, num_examples=rows))
    info = DatasetInfo(
        features=Features.from_arrow_schema(facts.schema),
        splits=splits,
        download_size=facts.data_bytes,
        dataset_size=facts.data_bytes,
    )
    card_data = DatasetCardData()
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    header["dataset_info"] = card_data.to_dict()["dataset_info"]
    return header


def _table(title: str, counter: Mapping[str, int], total: int) -> list[str]:
    lines = [f"| {title} | rows | share |", "|---|---|---|"]
    for key, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| {key} | {n} | {n / total:.1%} |")
    return lines


def _society(facts: CardFacts) -> list[str]:
    run = facts.view.run
    config = run.config
    lines = ["| agent | role | model | policy versions |", "|---|---|---|---|"]
    for name, agent in config.agents.items():
        engine = config.engines.get(agent.engine) if agent.engine else None
        model = engine.model if engine is not None else f"({agent.policy or 'no model'})"
        versions = [
            f"v{p.version} ({p.trainer}, after round {p.created_round})"
            for p in run.store.policy_versions(run.run_id, name)
        ]
        lines.append(f"| {name} | {agent.role} | {model} | base{''.join(', ' + v for v in versions)} |")
    lines += ["", "Messages (the role graph):", ""]
    for edge in config.graph:
        when = f" when {edge.when}" if edge.when else ""
        deliver = f", delivered {edge.deliver.replace('_', ' ')}" if edge.deliver != "now" else ""
        lines.append(f"- {edge.source} → {edge.target}: {edge.message}{when}{deliver}")
    s = config.schedule
    lines += [
        "",
        f"Schedule: {s.rounds} rounds of {s.problems_per_round} problems, {s.attempts_per_problem} "
        f"attempts per problem, success band {list(s.success_band)} (a problem joins the curriculum "
        "when the Solver's success rate on it lies in the band); trainers: "
        + (", ".join(f"{t.kind} for {t.agent} every {t.every} rounds" for t in config.trainers) or "none")
        + ".",
    ]
    return lines


def _selection(facts: CardFacts) -> list[str]:
    view, f = facts.view, facts.view.filters
    lines = [
        f"- rounds {view.window.start}-{view.window.stop - 1} of the run's 0-{view.run.last_round}, "
        f"as the memory stood after round {view.as_of}",
        f"- agent: {facts.agent or 'every agent'}",
    ]
    if f.skills is not None:
        lines.append(f"- skills: {', '.join(sorted(f.skills))}")
    if f.zones is not None:
        lines.append(f"- zones: {', '.join(sorted(f.zones))}")
    if f.success is not None:
        lines.append(f"- success rate in [{f.success[0]:g}, {f.success[1]:g}]")
    if f.policies is not None:
        lines.append(f"- attempts by policy versions {', '.join(sorted(f.policies))}")
    if facts.settings is not None:
        lines.append(f"- builder settings: `{json.dumps(dict(facts.settings), sort_keys=True)}`")
        lines.append(
            f"- random generator: the one of the training run after round {view.window.stop - 1} "
            f"(`training_rng({view.run.config.seed}, {facts.kind.trainer_kind!r}, {view.window.stop - 1})`)"
        )
    lines.append(f"- command: `{facts.command}`")
    return lines


def _cleaning(facts: CardFacts) -> list[str]:
    if facts.keep_duplicates:
        dedup = "Duplicates were kept (`--keep-duplicates`): the rows are the builder's, unchanged."
    else:
        dedup = (
            f"Removed {facts.exact_duplicates} exact duplicates (equal once whitespace, Unicode and "
            f"number formatting are normalised) and {facts.near_duplicates} near duplicates (the same "
            "other texts, and a problem with the same numbers and operator symbols in the same order "
            f"whose words overlap with Jaccard similarity >= {NEAR_JACCARD}: the same problem "
            "re-worded)."
        )
    lines = [
        dedup,
        "",
        "Decontamination: a row is removed when a problem it is about, or the problem that one was "
        f"refined or proposed from, belongs to an evaluation set. Word {NGRAM}-grams are long enough "
        "that independently written problems do not share one and short enough that a copy with "
        "other numbers still does; the procedural set is templated, so it is matched by content "
        "(skill, numbers, answer) instead.",
        "",
        "| evaluation set | problems | rule | rows removed |",
        "|---|---|---|---|",
    ]
    for eval_set in facts.decontaminator.sets:
        removed = facts.removed.get(eval_set.name, 0)
        lines.append(f"| {eval_set.name} | {eval_set.items} | {eval_set.rule} | {removed} |")
    lines += [f"\nNote: {note}." for note in facts.decontaminator.notes]
    return lines


def _licences(facts: CardFacts, licence: str) -> list[str]:
    lines = ["| derives from | rows |", "|---|---|"]
    for (name, _), n in sorted(facts.counts.origins.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {n} |")
    lines += [
        "",
        f"The header's `license: {licence}` covers the mix: `unknown` when any part's terms are "
        "unknown, a share-alike licence when any part is share-alike, MIT when all of it is, "
        "otherwise Apache-2.0, under which MIT-licensed parts are redistributed with their notice.",
    ]
    if any(name == DATASET_LICENCES["gsm8k"][0] for name, _ in facts.counts.origins):
        lines.append("\nGSM8K: Copyright (c) 2021 OpenAI, released under the MIT licence.")
    return lines


def render_card(facts: CardFacts) -> str:
    """The README.md text of an export."""
    header = _header(facts)
    view, kind, counts = facts.view, facts.kind, facts.counts
    run = view.run
    total = counts.rows
    body = [
        f"# {header['pretty_name']}",
        "",
        f"Each row is {kind.summary}. Exported by `coevo export` from the coevo run `{run.run_id}` "
        f"(society `{run.config.name}`, seed {run.config.seed}): {total} rows.",
        "",
        "## Use",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("PATH_OR_REPO_ID", split="train")',
        "```",
        "",
    ]
    if kind.usage:
        body += ["TRL reads these columns as they are:", "", "```python", kind.usage, "```", ""]
    body += [
        "Building this folder needs no network. To publish it as a Hub dataset repository:",
        "`hf upload USER/NAME THIS_FOLDER . --repo-type dataset` (`huggingface-cli upload` with the same",
        "arguments before huggingface_hub 1.0).",
        "",
        "## Columns",
        "",
        "| column | meaning |",
        "|---|---|",
        *(f"| `{c.name}` | {c.meaning} |" for c in kind.columns),
        "",
        "## How the data was generated",
        "",
        "A society of agents ran round by round; a verifier (answer extraction and math-verify, "
        "never the model's own claims) graded every attempt, and every message was recorded in the "
        "run's memory, from which these rows are built.",
        "",
        *_society(facts),
        "",
        kind.method,
        "",
        "## Selection",
        "",
        *_selection(facts),
        "",
        "## Counts",
        "",
        f"{total} rows, each counted under the problem it is about: its skills (a row with two "
        "skills counts under both), its zone over the selected attempts, the first selected round "
        "that touched it, and its source.",
        "",
        *_table("skill", counts.skill, total),
        "",
        *_table("zone", counts.zone, total),
        "",
        *_table("round", counts.round, total),
        "",
        *_table("source", counts.source, total),
        "",
        "## Cleaning",
        "",
        *_cleaning(facts),
        "",
        "## Licences",
        "",
        *_licences(facts, header["license"]),
        "",
    ]
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(body)
