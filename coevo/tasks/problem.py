"""`Problem`: a question with a known reference answer, its skills, difficulty and provenance."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, Field

Source = Literal["seed", "dataset", "procedural", "refined", "generated", "synthesized"]


class Provenance(BaseModel):
    """Where a problem came from, so a curriculum can be traced back to its seeds."""

    source: Source
    # The problem this one was refined/derived from (Socratic-Zero refinement, STAT-Syn).
    parent_id: str | None = None
    # The agent (or procedural generator) that authored it, e.g. "teacher", "procedural:v1".
    author: str | None = None
    # Dataset name and row index, or generator template and parameters, for reproduction.
    details: dict[str, Any] = Field(default_factory=dict)


class Problem(BaseModel):
    id: str
    question: str
    # The final answer as a string (an integer, a fraction "3/4", a decimal, a LaTeX expression).
    answer: str
    # A worked solution when known (a dataset's rationale, or the generator's derivation).
    solution: str | None = None
    skills: list[str] = Field(default_factory=list)
    # Named difficulty components, e.g. {"digits": 3, "steps": 2, "distractors": 0}.
    difficulty: dict[str, float] = Field(default_factory=dict)
    provenance: Provenance = Field(default_factory=lambda: Provenance(source="dataset"))

    @staticmethod
    def make_id(question: str, answer: str) -> str:
        """A stable id derived from content, so the same problem gets the same id on every run."""
        return hashlib.sha1(f"{question}\x00{answer}".encode()).hexdigest()[:16]
