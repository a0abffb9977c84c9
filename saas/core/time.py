"""The one clock the app reads."""
from datetime import datetime, timezone


def utcnow():
    """Now, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)
