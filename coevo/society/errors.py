"""Why a run stopped early, as exceptions the commands turn into a message and a non-zero exit."""

from __future__ import annotations


class RunError(RuntimeError):
    """A run that cannot go on: the message says why and what to do."""


class NothingToPoseError(RunError):
    """A round in which no agent could open a single episode (an empty source is an error)."""


class TrainingFailedError(RunError):
    """A training failed and the run's `on_training_error` is `stop`."""


class PolicyNotServedError(RunError):
    """The engine still answers as the previous policy after loading a new adapter."""
