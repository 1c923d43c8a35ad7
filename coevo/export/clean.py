"""Clean exported rows: exact and near-duplicate removal, and decontamination against evaluation
sets, each counted for the dataset card.

Normalised text: Unicode NFKC, every run of whitespace one space, numbers in one format ("1,000"
→ "1000", "2.50" → "2.5", "007" → "7").

Duplicates. Every row has a unit (the problem it is about, as its question; a coach transcript)
and other texts (the answer, the completion, chosen and rejected, ...). A row is an *exact*
duplicate of an earlier one when its unit and other texts are equal once normalised. It is a
*near* duplicate when its other texts are equal and its unit is a near duplicate of an earlier
unit: the same numbers and operator symbols in the same order (the problem's mathematics, so
"What is 3 + 5?" and "What is 3 + 6?" stay two problems however alike their words) and word sets
whose Jaccard similarity is at least `NEAR_JACCARD` (the same problem re-worded: other names,
objects, phrasing — the procedural generator's own notion of one problem). Word overlap alone
would merge most arithmetic problems, which differ only in their numbers.

Decontamination removes a row when a problem it is about (or the problem that problem was refined
or proposed from) belongs to an evaluation set:
- the procedural held-out set: a problem the generator wrote in the held-out partition; a problem
  of a procedural skill written by anyone else (an LLM Teacher, a Generator, a pool) whose content
  (skill, the numbers of its question, answer) falls in the held-out partition (`is_heldout_key`:
  the bucket evaluation draws from, which training must never see); or the same skills, numbers
  and answer as a problem of the run's held-out evaluation set (what `coevo eval --run` and
  `schedule.eval_every` measure), which catches a re-worded copy even with distractor sentences;
- GSM8K test (when the data folder is found) and every JSONL named with `--decontaminate`: the
  question shares a word 13-gram (`NGRAM`) with an item of the set, after normalising and
  lowercasing (punctuation dropped; numbers and operator symbols kept as words); a text shorter
  than 13 words matches only an item of exactly its words. 13-grams are long enough that
  independently written problems do not share one (4 of GSM8K's 7,473 training questions share
  one with its test set: 3 are a test problem with other names and numbers, 1 shares a sentence)
  and short enough that a copied question, with its numbers changed or a sentence added, still
  does. The procedural
  set is matched by content instead: its problems are written from templates, so n-grams would
  flag unrelated problems of the same template (8.6% of 5,000 training problems share a 13-gram
  with 2,000 held-out ones).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coevo.export.selection import ProblemInfo
from coevo.export.source import ExportError
from coevo.society.config import SocietyConfig
from coevo.tasks.answers import as_fraction
from coevo.tasks.heldout import heldout_set
from coevo.tasks.loaders import DatasetError, find_data_dir, load_file, load_gsm8k
from coevo.tasks.procedural import Draft, content_key, is_heldout_key
from coevo.tasks.skills import SKILLS

NGRAM = 13
NEAR_JACCARD = 0.5
# Units with the same numbers and symbols compared word by word; beyond this many distinct
# wordings of one signature, later units are compared with the first ones only.
MAX_REPRESENTATIVES = 64

# Numbers whose formatting can change: thousands separators, decimals, leading zeros (a plain
# integer is left alone, which keeps normalising long texts cheap).
_NUMBER_RE = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+\.\d+|(?<![\d.])0\d+")
# A quick test that lets most texts skip the substitution (a superset of what `_NUMBER_RE` finds).
_MAYBE_NUMBER_RE = re.compile(r"[,.]\d|0\d")
_TOKEN_RE = re.compile(r"[^\W\d_]+|\d+(?:\.\d+)?|[-+*/×÷=<>^%]")
_MATH_RE = re.compile(r"\d+(?:\.\d+)?|[-+*/×÷=<>^%]")
_DIGITS_RE = re.compile(r"\d+(?:\.\d+)?")
_WORD_RE = re.compile(r"[^\W\d_]+")


def _number(match: re.Match[str]) -> str:
    # The exact value's shortest decimal: "1,000" -> "1000", "2.50" -> "2.5", "007" -> "7".
    whole, _, fraction = match.group().replace(",", "").partition(".")
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def normalize(text: str) -> str:
    """`text` with Unicode, whitespace and number formatting normalised (see module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    if _MAYBE_NUMBER_RE.search(text):
        text = _NUMBER_RE.sub(_number, text)
    return " ".join(text.split())


def _digest(*parts: str) -> bytes:
    return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=16).digest()


class Deduplicator:
    """Remembers the rows kept so far and tells exact and near duplicates of them (counted)."""

    def __init__(self) -> None:
        self.exact = 0
        self.near = 0
        self._exact: set[bytes] = set()
        self._near: set[bytes] = set()
        self._clusters = 0
        self._cluster_of: dict[bytes, int] = {}
        self._representatives: dict[tuple[str, ...], list[tuple[int, frozenset[str]]]] = {}

    def duplicate(self, unit: str, rest: Sequence[str], *, near: bool = True) -> str | None:
        """ "exact" or "near" when the row repeats a kept one; otherwise None, and it is kept."""
        unit_text = normalize(unit)
        rest_text = "\x1f".join(normalize(t) for t in rest)
        exact = _digest(unit_text, rest_text)
        if exact in self._exact:
            self.exact += 1
            return "exact"
        similar = _digest(str(self._cluster(unit_text)), rest_text) if near else None
        if similar is not None and similar in self._near:
            self.near += 1
            return "near"
        self._exact.add(exact)
        if similar is not None:
            self._near.add(similar)
        return None

    def _cluster(self, unit_text: str) -> int:
        key = _digest(unit_text)
        found = self._cluster_of.get(key)
        if found is not None:
            return found
        words = frozenset(w.lower() for w in _WORD_RE.findall(unit_text))
        representatives = self._representatives.setdefault(tuple(_MATH_RE.findall(unit_text)), [])
        for cluster, other in representatives:
            union = len(words | other)
            if union == 0 or len(words & other) / union >= NEAR_JACCARD:
                self._cluster_of[key] = cluster
                return cluster
        cluster = self._clusters
        self._clusters += 1
        if len(representatives) < MAX_REPRESENTATIVES:
            representatives.append((cluster, words))
        self._cluster_of[key] = cluster
        return cluster


def _grams(text: str) -> set[int]:
    words = _TOKEN_RE.findall(normalize(text).lower())
    if len(words) < NGRAM:
        return {hash(tuple(words))}
    return {hash(tuple(words[i : i + NGRAM])) for i in range(len(words) - NGRAM + 1)}


def _content(skills: Iterable[str], question: str, answer: str) -> tuple[str, ...]:
    return (",".join(sorted(skills)), *_DIGITS_RE.findall(normalize(question)), "=", normalize(answer))


@dataclass
class EvalSet:
    """An evaluation set rows are checked against; `items` is how many problems it holds."""

    name: str
    rule: str
    items: int
    grams: set[int] = field(default_factory=set)


class Decontaminator:
    """Tells which evaluation set a row's problems (or texts) come from, if any."""

    HELDOUT = "procedural held-out"

    def __init__(self, config: SocietyConfig, files: Sequence[Path]) -> None:
        self.sets: list[EvalSet] = []
        self.notes: list[str] = []
        skills, levels = config.curriculum_space()
        # The problems `coevo eval --run` (seed 0) and the run's own evaluations (its seed) measure.
        size = max(300, config.schedule.eval_problems)
        self._heldout: set[tuple[str, ...]] = set()
        for seed in sorted({0, config.seed}):
            try:
                problems = heldout_set(n=size, skills=skills, seed=seed, levels=levels)
            except RuntimeError as exc:  # levels too narrow to spare `size` held-out problems
                self.notes.append(f"held-out set of seed {seed} not built ({exc}): partition rule only")
                continue
            self._heldout.update(_content(p.skills, p.question, p.answer) for p in problems)
        self.sets.append(
            EvalSet(
                self.HELDOUT,
                "content in the held-out partition, or the content of a held-out evaluation problem",
                len(self._heldout),
            )
        )
        root = find_data_dir()
        gsm8k = root / "gsm8k" / "test.jsonl" if root is not None else None
        if gsm8k is not None and gsm8k.is_file():
            self.sets.append(self._ngram_set("GSM8K test", [p.question for p in load_gsm8k(gsm8k)]))
        else:
            self.notes.append(
                "GSM8K test was not checked: no data folder with gsm8k/test.jsonl was found "
                "(set COEVO_DATA to the folder that holds it)"
            )
        for path in files:
            try:
                questions = [p.question for p in load_file(path)]
            except DatasetError as exc:
                raise ExportError(f"--decontaminate {path}: {exc}") from None
            self.sets.append(self._ngram_set(str(path), questions))
        self._verdicts: dict[str, str | None] = {}

    @staticmethod
    def _ngram_set(name: str, questions: Sequence[str]) -> EvalSet:
        grams: set[int] = set()
        for question in questions:
            grams |= _grams(question)
        return EvalSet(name, f"shares a word {NGRAM}-gram with one of its questions", len(questions), grams)

    def contaminated(self, problems: Iterable[ProblemInfo], texts: Iterable[str] = ()) -> str | None:
        """The name of the evaluation set the row comes from, or None when it is clean."""
        for info in problems:
            if info.problem_id not in self._verdicts:
                self._verdicts[info.problem_id] = self._problem(info)
            verdict = self._verdicts[info.problem_id]
            if verdict is not None:
                return verdict
        for text in texts:
            verdict = self._text(text)
            if verdict is not None:
                return verdict
        return None

    def _problem(self, info: ProblemInfo) -> str | None:
        # The generator records the partition of what it wrote; anything else is keyed afresh.
        if info.split == "heldout" or (info.split is None and self._in_heldout_partition(info)):
            return self.HELDOUT
        if _content(info.skills, info.question, info.answer) in self._heldout:
            return self.HELDOUT
        return self._text(info.question)

    @staticmethod
    def _in_heldout_partition(info: ProblemInfo) -> bool:
        # The whole question stands for a template's context and ask, whose numbers (with the
        # skill and the answer) are what the partition is keyed on.
        value = as_fraction(info.answer)
        if value is None:
            return False
        draft = Draft(context=info.question, ask="", answer=value, steps=[])
        return any(is_heldout_key(content_key(skill, draft)) for skill in info.skills if skill in SKILLS)

    def _text(self, text: str) -> str | None:
        grams = _grams(text)
        for eval_set in self.sets:
            if eval_set.grams and not grams.isdisjoint(eval_set.grams):
                return eval_set.name
        return None
