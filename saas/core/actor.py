"""Who is acting in this request, for the records that name them (the audit log): set by the
gate once the caller is known, cleared by the edge after each request. None in jobs and CLIs."""
import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    user_id: int
    ip_address: str | None


current_actor = contextvars.ContextVar("current_actor", default=None)
