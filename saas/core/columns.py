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
