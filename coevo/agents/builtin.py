"""Imports the five built-in roles so that their `register_role` decorators fill the registry."""

import coevo.agents.coach
import coevo.agents.generator
import coevo.agents.solver
import coevo.agents.student
import coevo.agents.teacher  # noqa: F401
