"""Versioned Solver prompts. A version is never edited once used: add a new one, so results
stored in memory stay comparable with the prompt that produced them."""

from __future__ import annotations

from coevo.engines.base import ChatMessage

SOLVER_PROMPT_V1 = (
    "You are a careful math student. Solve the problem step by step, briefly. "
    "End your reply with a final line of the form: The answer is N."
)

SOLVER_PROMPTS: dict[str, str] = {"v1": SOLVER_PROMPT_V1}


def solver_messages(question: str, version: str = "v1") -> list[ChatMessage]:
    """The chat messages that ask a Solver to answer `question`."""
    try:
        system = SOLVER_PROMPTS[version]
    except KeyError:
        raise ValueError(
            f"unknown solver prompt version {version!r}; known: {', '.join(SOLVER_PROMPTS)}"
        ) from None
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]
