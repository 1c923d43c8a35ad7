"""Errors the memory raises for bad input or an unusable database, each with a readable reason."""

from __future__ import annotations


class StoreError(Exception):
    """The memory cannot do what was asked (unknown run, bad URL, unreachable database, ...)."""


class SchemaVersionError(StoreError):
    """The database was written by a coevo with another schema version."""
