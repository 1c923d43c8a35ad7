"""Opening the memory database: any SQLAlchemy URL, with SQLite tuned for one writer and live readers.

SQLite runs in WAL mode so the TUI (another connection, often another process) reads committed
rounds while the society writes; `busy_timeout` makes a connection wait for a lock instead of
failing, and foreign keys are enforced. Transactions are begun by SQLAlchemy itself (the driver's
implicit BEGIN is turned off), so a write can take its lock up front with BEGIN IMMEDIATE: a
deferred transaction that reads and then writes can fail outright when another writer went first.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel, col

from coevo.memory.errors import SchemaVersionError, StoreError
from coevo.memory.tables import SCHEMA_VERSION, TABLES, Meta

# Execution option that marks a write transaction (see module docstring).
WRITE_OPTION = "coevo_write"
BUSY_TIMEOUT_MS = 30_000
# Any fixed number: PostgreSQL advisory lock taken while the schema is created.
_SCHEMA_LOCK_KEY = 0x636F65766F


def open_engine(url: str) -> Engine:
    """An engine for `url` whose schema is created or checked; StoreError when unusable."""
    parsed = _parse(url)
    shown = parsed.render_as_string(hide_password=True)
    try:
        engine = _create(parsed)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use memory URL {shown}: {exc}") from exc
    try:
        _ensure_schema(engine, shown)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open memory database {shown}: {exc}") from exc
    except StoreError:
        engine.dispose()
        raise
    return engine


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        # Not quoted: a URL that does not parse may still hold a password where it cannot be found.
        raise StoreError("not a database URL (e.g. sqlite:///run/coevo.db or postgresql://host/db)") from exc
    # A plain postgresql:// means psycopg2 to SQLAlchemy; use psycopg 3 when only that is installed.
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _create(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if url.database in (None, "", ":memory:"):
        # One shared connection, or every thread would see its own empty in-memory database.
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN from the driver
    cursor = dbapi_connection.cursor()
    # The timeout first: switching to WAL takes a lock that a process creating the file may hold.
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # In WAL mode NORMAL still commits atomically and survives a killed process.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _ensure_schema(engine: Engine, shown: str) -> None:
    # Check the version before creating anything, so an old database is not modified.
    if inspect(engine).has_table(Meta.__tablename__):
        with engine.connect() as conn:
            if _stored_version(conn, shown) is not None:
                return
    # Create in one write transaction, re-checking inside it: a follower (`coevo watch`) may open
    # the database while the run is still creating it, and two creators must not race.
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        if inspect(conn).has_table(Meta.__tablename__) and _stored_version(conn, shown) is not None:
            return
        SQLModel.metadata.create_all(conn, tables=TABLES)
        conn.execute(insert(Meta).values(id=1, schema_version=SCHEMA_VERSION))


def _stored_version(conn: Connection, shown: str) -> int | None:
    """The database's schema version, None before it is written; SchemaVersionError when stale."""
    version = conn.execute(select(col(Meta.schema_version)).where(col(Meta.id) == 1)).scalar()
    if version is not None and version != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"memory database {shown} has schema version {version}, "
            f"this coevo uses version {SCHEMA_VERSION}; use a new run directory or database"
        )
    return version
