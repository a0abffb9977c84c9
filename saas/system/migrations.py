"""Where the database stands against this code's migrations, without loading Alembic.

A server only needs the revision ids, which sit as plain assignments (``revision = '...'``,
``down_revision = '...'``) at the top of each file in migrations/versions/: reading them costs
nothing, where importing Alembic costs every server process 11 MB.
"""
import ast
import functools

import sqlalchemy as sa

from config import MIGRATIONS_DIR


@functools.cache
def known_revisions(directory=MIGRATIONS_DIR / "versions"):
    """``(every revision id, the heads)`` of the migration files in ``directory``."""
    revisions, parents = set(), set()
    for path in directory.glob("*.py"):
        values = {
            node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("revision", "down_revision")
        }
        revisions.add(values["revision"])
        down = values.get("down_revision")
        parents.update(down if isinstance(down, (tuple, list)) else [down] if down else [])
    return frozenset(revisions), frozenset(revisions - parents)


def migration_state(connection):
    """``ok`` at this code's heads; ``ahead`` when the database carries a revision this code does
    not know (a newer release migrated it: expand-then-contract keeps this release working, so
    it stays ready during a rolling update); ``pending`` when migrations are missing."""
    revisions, heads = known_revisions()
    if not sa.inspect(connection).has_table("alembic_version"):
        return "pending"
    current = set(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    if current == heads:
        return "ok"
    return "ahead" if current - revisions else "pending"
