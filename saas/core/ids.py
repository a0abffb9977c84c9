"""Identifiers the app generates itself, and the range of the integer ones."""
import uuid

# Every integer id is an ``sa.Integer``: 32 bits on PostgreSQL, and no larger on SQLite, whose
# rows get theirs from the same sequence of small numbers. No row has a larger id, and SQLite
# cannot even compare one past 64 bits (an OverflowError, a 500): such ids are answered
# without asking the database.
MAX_ID = 2**31 - 1
_MAX_ID_DIGITS = len(str(MAX_ID))


def new_uuid():
    """A random UUID as text (36 characters): session ids, token ids, job ids."""
    return str(uuid.uuid4())


def parse_id(digits):
    """The id a string of ASCII digits names, or None when it is past every id: at any length
    (Python's ``int()`` refuses more than 4,300 digits)."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > _MAX_ID_DIGITS:
        return None
    number = int(significant)
    return number if number <= MAX_ID else None
