"""Identifiers: the ones the app generates itself, and the range of the database's row ids."""
import uuid

# Every table's id is a PostgreSQL integer. A larger number names no row; compared with an id
# column it is an error in PostgreSQL (the driver binds it as an integer), so callers check it.
MAX_ROW_ID = 2**31 - 1


def new_uuid():
    """A random UUID as text (36 characters): session ids, token ids, job ids."""
    return str(uuid.uuid4())
