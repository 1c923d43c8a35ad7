"""Versioned Solver prompts, and the answer format the Solver is asked for and trained on.

A prompt version is never edited once used: add a new one, so results stored in memory stay
comparable with the prompt that produced them."""

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


def answer_line(answer: str) -> str:
    return f"The answer is {answer.strip()}."


def solution_text(solution: str | None, answer: str) -> str:
    """A reference solution that ends with the answer line the Solver is asked to produce.

    Datasets and the procedural generator do not always end solutions that way; training on a
    different ending would teach the Solver a format its grader's extraction does not expect.
    """
    body = (solution or "").strip()
    final = answer_line(answer)
    if body.endswith(final):
        return body
    return f"{body}\n{final}" if body else final
