"""How the app talks to its database: the transaction of a use case, and the reads that need none.

**One use case, one transaction.** A service function that writes is a use case: it is declared
with ``@atomic`` (or runs its writes in ``with transaction():``), which commits when it returns and
rolls back when it raises. A use case called from another joins the caller's transaction, so the
outermost one decides; audit events and signal receivers run inside it and never commit. What
must happen outside the database (queueing a job, sending mail, a signal whose receivers call
Stripe) is registered with ``after_commit`` and runs once the transaction has committed, never if
it rolled back. ``savepoint()`` lets a use case try a write that may fail (a unique slug) and carry
on. Work that must be committed before an outside call (a Stripe customer before a checkout) is
two use cases. Only this module commits (tests/test_architecture.py holds every other module to it).

**Reads without a transaction.** The request's ORM session begins a transaction with its first
query and rolls it back at the end of the request: two more round trips that a read-only lookup
(the gate's) does not need. Such lookups go through ``read_row``, on an engine of its own whose
connections are always in autocommit (switching a pooled connection back and forth costs as much
again); ``Prepared`` has PostgreSQL plan them once per connection.

**SQLite** (the embedded default) enforces foreign keys only on connections that ask:
``enforce_sqlite_foreign_keys`` makes every one ask.
"""
import contextlib
import functools
import os
import sqlite3
import threading
import time

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state

from saas.extensions import db, wait_for_a_session


_DEPTH, _AFTER_COMMIT = "saas.use_case_depth", "saas.after_commit"


@contextlib.contextmanager
def transaction():
    """The transaction of one use case: committed when the block ends, rolled back if it raises.
    Nested in another, it joins it (the outermost commits); ``after_commit`` work runs once the
    outermost has committed."""
    info = db.session.info
    depth = info.get(_DEPTH, 0)
    info[_DEPTH] = depth + 1
    try:
        yield
        if depth == 0:
            db.session.commit()
    except BaseException:
        if depth == 0:
            db.session.rollback()
            info.pop(_AFTER_COMMIT, None)
        raise
    finally:
        info[_DEPTH] = depth
    if depth == 0:
        for work in info.pop(_AFTER_COMMIT, ()):
            work()


def atomic(use_case):
    """Declare a service function a use case: it runs in ``transaction()``."""

    @functools.wraps(use_case)
    def in_transaction(*args, **kwargs):
        with transaction():
            return use_case(*args, **kwargs)

    return in_transaction


def in_transaction():
    """Whether a use case's transaction is open (``transaction()``)."""
    return db.session.info.get(_DEPTH, 0) > 0


def after_commit(work):
    """Run ``work()`` once the open use case has committed (dropped if it rolls back); at once
    outside one. For what must not happen unless the change is stored: jobs, mail, signals whose
    receivers reach outside the database."""
    if in_transaction():
        db.session.info.setdefault(_AFTER_COMMIT, []).append(work)
    else:
        work()


def discard():
    """Roll back whatever the session holds after a failure outside any use case (a job's or a
    sweep's read that failed), so the next use case starts clean. Never inside one."""
    if in_transaction():
        raise RuntimeError("discard() inside a use case: raise instead, and it rolls back")
    db.session.rollback()


@contextlib.contextmanager
def savepoint():
    """A part of a use case that may fail on its own (a unique value taken meanwhile): its writes
    are undone if it raises, and the use case goes on."""
    with db.session.begin_nested():
        yield


def enforce_sqlite_foreign_keys():
    """Have every SQLite connection, of any engine in the process, enforce foreign keys: SQLite
    ignores them (``ON DELETE CASCADE`` included) unless each connection asks. Migrations turn
    them off while they rebuild tables (migrations/env.py)."""
    if not sa.event.contains(sa.engine.Engine, "connect", _foreign_keys_on):
        sa.event.listen(sa.engine.Engine, "connect", _foreign_keys_on)


def _foreign_keys_on(dbapi_connection, connection_record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()


def _autocommit_engine():
    engine = current_app.extensions.get("autocommit_engine")
    if engine is None:
        url = db.engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            engine = db.engine.execution_options(isolation_level="AUTOCOMMIT")  # one shared memory DB
        else:
            # No pre-ping here (a round trip per lookup): ``read_row`` retries a dropped connection.
            # Same pool size as the session's (DB_POOL_SIZE, one per request thread): a smaller
            # pool would open and close a connection per request under load.
            # No rollback when a connection goes back to the pool either: in autocommit no
            # transaction is ever open, and the driver's rollback would do nothing but cost.
            options = {**current_app.config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_pre_ping": False,
                       "pool_reset_on_return": None}
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", **options)
        current_app.extensions["autocommit_engine"] = engine
    return engine


class Prepared:
    """A read-only ``select`` that PostgreSQL parses and plans once per connection (PREPARE, then
    EXECUTE): for the lookups every authenticated request makes, planning cost PostgreSQL twice
    the CPU of running them (bench/RESULTS.md). Elsewhere (SQLite, DB_PREPARED_STATEMENTS off)
    it runs as a plain query."""

    _names = set()

    def __init__(self, name, query):
        if name in Prepared._names:  # a connection holds one statement per name
            raise ValueError(f"a prepared query is already named {name!r}")
        Prepared._names.add(name)
        self.name = name
        self.query = query
        self._statements = {}  # {dialect name: (PREPARE text, EXECUTE clause, bound values)}

    def statements(self, dialect):
        """``(PREPARE text, EXECUTE clause, the query's own bound values)`` for ``dialect``."""
        if dialect.name not in self._statements:
            # PREPARE takes $1, $2... where psycopg2 takes %(name)s: compiled the same way, then.
            numbered = type(dialect)(paramstyle="numeric_dollar")
            compiled = self.query.compile(dialect=numbered)
            names = compiled.positiontup
            execute = (
                sa.text(f"EXECUTE {self.name}({', '.join(f':{name}' for name in names)})")
                .bindparams(*(sa.bindparam(name, type_=compiled.binds[name].type) for name in names))
                .columns(*self.query.selected_columns)
            )
            self._statements[dialect.name] = (f"PREPARE {self.name} AS {compiled}", execute, compiled.params)
        return self._statements[dialect.name]

    def driver_statement(self, dialect):
        """What ``read_row`` needs to run the prepared statement on the driver's own cursor,
        worked out once: ``(EXECUTE in psycopg2's paramstyle, [(parameter, its bind processor)],
        [(column, its result processor)], the query's own bound values)``. The processors are the
        types' own (UTCDateTime's), None where the driver's value is final."""
        if f"{dialect.name}+driver" not in self._statements:
            numbered = self.query.compile(dialect=type(dialect)(paramstyle="numeric_dollar"))
            parameters = [(name, numbered.binds[name].type.bind_processor(dialect)) for name in numbered.positiontup]
            execute = f"EXECUTE {self.name}({', '.join(f'%({name})s' for name, _ in parameters)})"
            columns = [(column.name, column.type.result_processor(dialect, None)) for column in self.query.selected_columns]
            self._statements[f"{dialect.name}+driver"] = (execute, parameters, columns, numbered.params)
        return self._statements[f"{dialect.name}+driver"]


# PostgreSQL's answers when a connection's prepared statement no longer fits: a migration changed
# the type of a column it returns (0A000), or a pooler's reset (DISCARD ALL) dropped it (26000);
# and when PREPARE finds one of that name there (42P05): the stale one, or one not recorded.
_STALE = ("0A000", "26000")
_ALREADY_PREPARED = "42P05"


def read_row(query, params):
    """The one row of a read-only query (a ``select`` or a ``Prepared``) as a mapping, or None.

    Retried once on a connection the server had dropped: after a PostgreSQL restart every
    pooled connection is stale, and SQLAlchemy discards them all on the first failure.
    """
    engine = _autocommit_engine()
    if isinstance(query, Prepared) and engine.dialect.driver == "psycopg2" and current_app.config["DB_PREPARED_STATEMENTS"]:
        row = _read_on_the_driver(engine, query, params)
        if row is not _UNANSWERED:
            return row
    for attempt in (1, 2):
        try:
            with _autocommit_engine().connect() as connection:
                return _execute(connection, query, params).mappings().one_or_none()
        except sa.exc.DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
    return None


_UNANSWERED = object()


def _read_on_the_driver(engine, query, params):
    """A prepared lookup on the pooled connection's own psycopg2 cursor, without SQLAlchemy's
    execution layer, which cost more CPU than the driver and PostgreSQL together on the gate's
    path (bench/RESULTS.md): the statement, its parameters' and columns' conversions are worked
    out once (``Prepared.driver_statement``), on the connection the thread keeps for its lookups
    (``_lookup_connection``). This is the path where all goes well: on any error
    from the driver (a statement gone stale, a dropped connection, anything else) the connection is
    invalidated if it was dropped, the thread lets it go, and ``_UNANSWERED`` hands the lookup to
    SQLAlchemy's path, with its retries, its re-preparing and its errors."""
    execute, parameters, columns, bound = query.driver_statement(engine.dialect)
    values = {**bound, **params}
    for name, process in parameters:
        if process is not None:
            values[name] = process(values[name])
    connection = _lookup_connection(engine)
    try:
        prepared = connection.info.setdefault("prepared", set())
        with connection.cursor() as cursor:
            if query.name not in prepared:
                cursor.execute(query.statements(engine.dialect)[0])
                prepared.add(query.name)
            cursor.execute(execute, values)
            rows = cursor.fetchmany(2)
    except engine.dialect.loaded_dbapi.Error as error:
        if engine.dialect.is_disconnect(error, connection.dbapi_connection, None):
            connection.invalidate(error)
        _let_go(connection)
        return _UNANSWERED
    except BaseException:
        _let_go(connection)
        raise
    if connection is not _held.connection:
        connection.close()
    if len(rows) > 1:
        raise sa.exc.MultipleResultsFound("read_row: more than one row")
    if not rows:
        return None
    return {name: value if process is None else process(value) for (name, process), value in zip(columns, rows[0])}


class _HeldConnection(threading.local):
    """The pooled connection one thread keeps for its lookups between requests (``read_row``)."""

    connection = None
    pool = None
    pid = None
    until = 0.0


_held = _HeldConnection()
# Connections a forked child inherited held: never used, closed or collected there (closing one
# would end the parent's session on the socket they share).
_inherited = []
HOLD_SECONDS = 60


def _lookup_connection(engine):
    """A connection from ``engine``'s pool for one lookup, which the thread keeps for its next
    ones: a checkout and a check-in per request cost the gate 4% of a request's instructions
    (bench/RESULTS.md). The pool counts it as checked out, so DB_POOL_SIZE still bounds the
    connections: a thread keeps one only while the pool has no more than its size out (its
    overflow stays for everything else), and for at most ``HOLD_SECONDS`` or DB_POOL_RECYCLE,
    then gives it back for the pool's recycling."""
    held = _held
    pool = engine.pool
    if held.connection is not None:
        if held.pool is pool and held.pid == os.getpid() and time.monotonic() < held.until:
            return held.connection
        _let_go(held.connection)
    connection = engine.raw_connection()
    if isinstance(pool, sa.pool.QueuePool) and pool.checkedout() <= pool.size():
        recycle = pool._recycle if pool._recycle > 0 else HOLD_SECONDS
        held.connection, held.pool, held.pid = connection, pool, os.getpid()
        held.until = time.monotonic() + min(HOLD_SECONDS, recycle)
    return connection


def _let_go(connection):
    """Back to its pool (a forked child's inherited one: left alone, as above)."""
    held = _held
    if connection is held.connection:
        if held.pid != os.getpid():
            _inherited.append(connection)
            connection = None
        held.connection = held.pool = held.pid = None
    if connection is not None:
        connection.close()


def _execute(connection, query, params):
    if not isinstance(query, Prepared):
        return connection.execute(query, params)
    if connection.dialect.name != "postgresql" or not current_app.config["DB_PREPARED_STATEMENTS"]:
        return connection.execute(query.query, params)
    prepare, execute, bound = query.statements(connection.dialect)
    params = {**bound, **params}
    prepared = connection.info.setdefault("prepared", set())  # cleared with a new connection
    if query.name not in prepared:
        _prepare(connection, query.name, prepare)
        prepared.add(query.name)
    try:
        return connection.execute(execute, params)
    except sa.exc.DBAPIError as error:
        if _code(error) not in _STALE:
            raise
    # Gone stale on this connection, and so on every pooled one: planned again here, once.
    # (Autocommit: a failed statement leaves nothing to roll back.)
    _prepare(connection, query.name, prepare)
    return connection.execute(execute, params)


def _prepare(connection, name, prepare):
    try:
        connection.exec_driver_sql(prepare)
    except sa.exc.DBAPIError as error:
        if _code(error) != _ALREADY_PREPARED:
            raise
        connection.exec_driver_sql(f"DEALLOCATE {name}")  # the stale plan, or one not recorded
        connection.exec_driver_sql(prepare)


def _code(error):
    return getattr(error.orig, "pgcode", None)


def write(statement, params=None):
    """Run one statement on its own, committed at once (autocommit)."""
    with _autocommit_engine().connect() as connection:
        connection.execute(statement, params or {})


def loaded(cls, values):
    """An instance of the mapped class ``cls`` holding ``values`` ({attribute: value}) as if
    loaded from its row, attached to the request's session (``attached``). Built without the
    declarative constructor, whose instrumented setattr per column cost more than the query's
    driver work on the gate's path. Needs the mappers configured (``create_app`` does it)."""
    mapper = cls.__mapper__
    instance = mapper.class_manager.new_instance()
    instance.__dict__.update(values)
    columns, primary_key = _row_shape(mapper)
    if values.keys() >= columns:
        # What make_transient_to_detached does to a new instance that holds every column, for a
        # third of its cost on the gate's path: the identity set; no history to commit, no
        # column to expire (tests/test_gate.py compares the two).
        instance_state(instance).key = mapper.identity_key_from_primary_key([values[key] for key in primary_key])
    else:
        make_transient_to_detached(instance)
    return attached(instance)


def loaded_from_row(cls, row):
    """``loaded`` for a row (``read_row``'s) that holds every column of ``cls``'s table under its
    own name."""
    return loaded(cls, {name: row[name] for name in _column_names(cls.__table__)})


@functools.cache
def _column_names(table):
    return tuple(column.name for column in table.columns)


@functools.cache
def _row_shape(mapper):
    """``(every column attribute's key, the primary key's attribute keys)`` of ``mapper``."""
    return (frozenset(prop.key for prop in mapper.column_attrs),
            tuple(mapper.get_property_by_column(column).key for column in mapper.primary_key))


def attached(instance):
    """``instance``, detached with its identity (``loaded``), built from a row read by
    ``read_row``, as the request session's own copy, as if the session had loaded it (no query).

    When the app context has no session yet (the gate's lookup comes first), the instance waits
    and joins the session when one is opened (``saas.extensions.RequestSession``), before
    anything can query or flush through it: a request that never opens one (``GET /users/me``)
    pays for neither the session nor the attachment (bench/RESULTS.md). Until then it is
    detached, so what the gate builds must be complete: every column and relationship loaded
    (tests/test_gate.py)."""
    if wait_for_a_session(instance):
        return instance
    if db.session.identity_map.get(instance_state(instance).key) is None:
        db.session.add(instance)  # the usual case: a new session per request
        return instance
    return db.session.merge(instance, load=False)


def fields_of(instance, names):
    """``{name: instance.name}`` for ``names``: a row as a plain dict (exports)."""
    return {name: getattr(instance, name) for name in names}


def page_of(query, pagination):
    """One page of an ORM ``select`` (ordered by the caller), and its total set on
    ``pagination`` (flask-smorest's pagination parameters: ``first_item``, ``page_size``,
    ``item_count``, which fill the ``X-Pagination`` header)."""
    counted = sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    pagination.item_count = db.session.scalar(counted)
    if pagination.first_item >= pagination.item_count:
        return []  # past the end; and a page number past PostgreSQL's bigint would be a 500
    return db.session.scalars(query.offset(pagination.first_item).limit(pagination.page_size)).all()


def one_by_one(keys, work):
    """``work(key)`` for each key, each a use case of its own: a failure is rolled back and
    collected, and the rest still run (repairs, sweeps, operator commands). Returns (how many
    succeeded, [(key, error), ...])."""
    done, failures = 0, []
    for key in keys:
        try:
            with transaction():
                work(key)
            done += 1
        except Exception as error:
            failures.append((key, error))
    return done, failures
