"""Column types shared by the models."""
from datetime import timezone

import sqlalchemy as sa


class UTCDateTime(sa.TypeDecorator):
    """A timezone-aware timestamp on every database.

    PostgreSQL keeps the zone; SQLite (the embedded default) drops it, so values read back from
    it are marked UTC, which is what the app always writes.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


# Table options of every table with an integer id: SQLite gives the next row the id of the
# newest deleted one unless the table says AUTOINCREMENT, and an id that names something else
# tomorrow (an organization, a user, a key) hands its access, quota and history to a stranger.
# (PostgreSQL's sequences never go back.) A migration that rebuilds such a table on SQLite
# passes them again (``table_kwargs``): the rebuilt table does not keep them by itself.
IDS_NEVER_REUSED = {"sqlite_autoincrement": True}
