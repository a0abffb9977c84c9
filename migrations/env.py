import contextlib
import logging
from logging.config import fileConfig

from flask import current_app

from alembic import context
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger('alembic.env')


def get_engine():
    return current_app.extensions['migrate'].db.engine


def get_engine_url():
    try:
        return get_engine().url.render_as_string(hide_password=False).replace(
            '%', '%%')
    except AttributeError:
        return str(get_engine().url).replace('%', '%%')


# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
config.set_main_option('sqlalchemy.url', get_engine_url())
target_db = current_app.extensions['migrate'].db

# other values from the config, defined by the needs of env.py,
# can be acquired:
# my_important_option = config.get_main_option("my_important_option")
# ... etc.


def render_item(type_, obj, autogen_context):
    """Write our UTCDateTime columns as plain timezone-aware DateTime in migration scripts."""
    from saas.core.columns import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def get_metadata():
    if hasattr(target_db, 'metadatas'):
        return target_db.metadatas[None]
    return target_db.metadata


# `flask db upgrade` runs while the previous release serves. A schema change takes a lock that
# waits for every transaction already using the table, and every query after it waits behind it:
# so a migration waits at most this long for a lock, then fails (the whole upgrade is rolled back
# and the previous release serves on), to be run again (the Kubernetes Job retries by itself).
# `flask db upgrade -x lock_timeout=0` waits as long as it takes, e.g. in a maintenance window.
LOCK_TIMEOUT = "5s"


@contextlib.contextmanager
def waiting_briefly_for_locks(connection):
    if connection.dialect.name != "postgresql":
        yield
        return
    lock_timeout = context.get_x_argument(as_dictionary=True).get("lock_timeout", LOCK_TIMEOUT)
    connection.execute(text("SELECT set_config('lock_timeout', :value, false)"), {"value": lock_timeout})
    connection.commit()  # a session setting: it holds for the migrations' own transaction
    try:
        yield
    finally:
        # The connection goes back to the app's pool (flask_migrate.upgrade() in a process); a
        # broken one is discarded anyway, and its error must not hide the migration's.
        with contextlib.suppress(DBAPIError):
            connection.rollback()
            connection.execute(text("RESET lock_timeout"))
            connection.commit()


@contextlib.contextmanager
def sqlite_foreign_keys_off(connection):
    """SQLite alters a table by rebuilding it (batch migrations: copy, drop, rename), and with
    foreign keys on, dropping a table deletes every row that references it (ON DELETE CASCADE).
    The app turns them on for every connection (saas/core/database.py): here they are off while
    the migrations run (SQLite ignores the switch inside a transaction, hence before it), then
    checked, then on again for the connection's next user (the app's pool, in-process)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
    connection.commit()
    try:
        yield
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            table, rowid, parent, _ = broken[0]
            raise RuntimeError(
                f"the migrations left {len(broken)} rows referring to rows that do not exist, "
                f"e.g. {table} rowid {rowid} -> {parent}"
            )
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys = ON")
        connection.commit()


def run_migrations_offline():
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=get_metadata(), literal_binds=True
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    conf_args = current_app.extensions['migrate'].configure_args
    conf_args.setdefault("render_item", render_item)
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    connectable = get_engine()

    with (
        connectable.connect() as connection,
        waiting_briefly_for_locks(connection),
        sqlite_foreign_keys_off(connection),
    ):
        context.configure(
            connection=connection,
            target_metadata=get_metadata(),
            **conf_args
        )

        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
