"""The service's database: its engine, sessions, and migrations (Alembic, shipped in the
package: ``rclaude-infra db upgrade``; ``serve`` runs them on an empty database)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError
from .settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"
#: Connections of a service process: its pool, and the most it opens beyond it.
POOL_SIZE, POOL_OVERFLOW = 10, 30


def make_engine(settings: ServiceSettings) -> Engine:
    """The engine for the settings' database (a SQLite file's folder is made, and its
    foreign keys enforced, as PostgreSQL's are)."""
    path = settings.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.database_url, pool_size=POOL_SIZE,
                               max_overflow=POOL_OVERFLOW,
                               connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        _writers_take_turns(engine)
        # Readers do not wait on a writer. Set once: the file keeps it, and asked on every
        # new connection it waited for every open transaction (a hundred requests at once
        # stalled behind it).
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        return engine
    engine = create_engine(settings.database_url, pool_pre_ping=True, pool_size=POOL_SIZE,
                           max_overflow=POOL_OVERFLOW)
    if settings.database_secret_arn is not None:
        _login_from_secret(engine, settings.database_secret_arn)
    return engine


def _login_from_secret(engine: Engine, secret_arn: str) -> None:
    """Each new connection logs in with the secret's login (``_aws.db_login``); a refused
    login is tried once more with the secret read again (RDS rotated the password)."""
    from .._aws.db_login import DatabaseLogin

    login = DatabaseLogin(secret_arn)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        try:
            return dialect.connect(*cargs, **{**cparams, **login.login()})
        except dialect.loaded_dbapi.OperationalError:
            return dialect.connect(*cargs, **{**cparams, **login.login(fresh=True)})


#: The PostgreSQL advisory lock key migrations hold ("rclaude" in ASCII, as a number).
MIGRATION_LOCK = 0x72636C61756465
#: Seconds a writer waits for this process's turn before it goes on to SQLite's own
#: busy wait (so a writer that already holds a turn and writes again never blocks).
TURN_SECONDS = 30.0


def _writers_take_turns(engine: Engine) -> Any:
    """This process's writers to one SQLite file take turns on a semaphore, from their
    first write to their commit or rollback: the span SQLite itself holds its one write
    lock (pysqlite begins a transaction at the first write). Without it, writers blocked
    on that lock poll SQLite's busy handler, which sleeps 1 to 100 ms between tries: a
    request waiting behind a few others slept far longer than the others took. Returns
    the semaphore."""
    import threading

    turns = threading.Semaphore(1)
    writes = ("INSERT", "UPDATE", "DELETE", "REPLACE")

    @event.listens_for(engine, "before_cursor_execute")
    def _take(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "rclaude_turn" not in connection.info and statement.lstrip()[:7].upper(
                ).startswith(writes):
            connection.info["rclaude_turn"] = turns.acquire(timeout=TURN_SECONDS)

    def _give(connection: Any) -> None:
        if connection.info.pop("rclaude_turn", False):
            turns.release()

    def _given_back(record: Any) -> None:
        # A connection back in the pool (or dropped) with its transaction unended.
        if record is not None and record.info.pop("rclaude_turn", False):
            turns.release()

    event.listen(engine, "commit", _give)
    event.listen(engine, "rollback", _give)

    @event.listens_for(engine.pool, "reset")
    def _reset(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
        _given_back(connection_record)

    @event.listens_for(engine.pool, "invalidate")
    def _invalidate(dbapi_connection: Any, connection_record: Any, exception: Any) -> None:
        _given_back(connection_record)

    @event.listens_for(engine.pool, "close")
    def _close(dbapi_connection: Any, connection_record: Any) -> None:
        _given_back(connection_record)

    return turns


def migrate(engine: Engine, revision: str = "head") -> str:
    """Bring the database to ``revision`` (the newest schema); returns the revision it
    is at."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Processes starting together (a service's tasks on a new release) migrate one
            # after another: the next finds the schema there. Released at commit.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    with engine.connect() as connection:
        return str(MigrationContext.configure(connection).get_current_revision())


def head_revision() -> str:
    """The newest migration's revision (what ``migrate`` brings a database to)."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


def prepare(engine: Engine, settings: ServiceSettings) -> None:
    """At a process's start: a new database migrated (and any, with ``migrate_on_start``:
    a service whose release brings its own migrations), else its revision checked."""
    if settings.migrate_on_start or is_empty(engine):
        migrate(engine)
    else:
        check_revision(engine)


def check_revision(engine: Engine) -> None:
    """A :class:`ConfigError` naming ``database_url`` when the database's schema is not
    the newest (``rclaude-infra db upgrade`` brings it there)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if current != head:
        raise ConfigError("database_url", engine.url.render_as_string(hide_password=True),
                          f"a database at revision {head} (it is at {current}): run "
                          "`rclaude-infra db upgrade`")


def is_empty(engine: Engine) -> bool:
    """No table of the service's yet (a new database)."""
    return not inspect(engine).has_table("users")


class Database:
    """Sessions on one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def new_session(self) -> Session:
        """A session to commit or roll back and close yourself."""
        return self._sessions()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end of the block, rolled back on an error."""
        with self._sessions() as session, session.begin():
            yield session


def dialect_insert(session: Session) -> Any:
    """The ``insert`` of the session's database dialect, which has ``ON CONFLICT`` (both
    SQLite, since 3.24, and PostgreSQL take it, with ``RETURNING`` since SQLite 3.35)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else (
        sqlite.insert)


def insert_new(session: Session, model: type[Any], **values: Any) -> bool:
    """Insert a row unless one with its key (or another unique column) is there already;
    whether this call inserted it. One statement (``ON CONFLICT DO NOTHING`` on SQLite and
    PostgreSQL), so two processes inserting the same key at once leave one row and each
    knows which it was."""
    insert = dialect_insert(session)
    # RETURNING, not rowcount: an ORM-enabled INSERT's rowcount is not the driver's on
    # psycopg (it read -1, as though every row were there already).
    key = list(model.__table__.primary_key.columns)
    statement = insert(model).values(**values).on_conflict_do_nothing().returning(*key)
    return session.execute(statement).first() is not None
