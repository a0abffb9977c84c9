"""Identifiers the app generates itself."""
import uuid


def new_uuid():
    """A random UUID as text (36 characters): session ids, token ids, job ids."""
    return str(uuid.uuid4())
