"""URL converters."""
from werkzeug.routing import IntegerConverter

from saas.core.ids import MAX_ROW_ID


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in every route: a row id, so a number past the ids' range matches no route
    (404) instead of reaching PostgreSQL, which refuses to compare it with an id column."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)
