"""Every extension instance, created once and bound to the app in ``create_app``."""
import time

import flask_limiter
import flask_sqlalchemy.session
from flask import current_app, g, has_app_context, request
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_sqlalchemy import SQLAlchemy
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm.attributes import instance_state

from saas.web.api import EnvelopeApi
from saas.web.ratelimit import (
    CountingFixedWindow, counted_context, counts_in_one_round_trip, rate_limit_headers, release_context_if_used,
)
from saas.web.requests import principal_or_ip_key

# Named constraints make migrations reproducible and droppable on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PerAppLimiter(flask_limiter.Limiter):
    """flask-limiter keeps its switch and storage on the instance, which every app shares.

    So that one process can hold several apps (tests, scripts): an app with RATELIMIT_ENABLED
    off is never limited and leaves the shared state alone, and each limited app starts on its
    own storage instead of inheriting a "storage is down" verdict from an earlier app.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.request_filter(self.switched_off)

    @staticmethod
    def switched_off():
        """The request filter of an app with RATELIMIT_ENABLED off (the gate asks the setting itself)."""
        return not current_app.config.get("RATELIMIT_ENABLED", True)

    def init_app(self, app):
        if not app.config.setdefault("RATELIMIT_ENABLED", True):
            return
        self._storage_dead = False
        # ...nor its backoff between looks for a storage that was down (up to 32 s).
        self._Limiter__check_backend_count, self._Limiter__last_check_backend = 0, time.time()
        super().init_app(app)
        if type(self._limiter) is FixedWindowRateLimiter and counts_in_one_round_trip(self._storage):
            self._limiter = CountingFixedWindow(self._storage)
        hooks = app.after_request_funcs.setdefault(None, [])
        found = [index for index, hook in enumerate(hooks)
                 if getattr(hook, "func", None) is flask_limiter.Limiter._Limiter__inject_headers]
        if found:  # bound once per app (flask-limiter's own rule); not found: a seam test fails
            hooks[found[0]] = rate_limit_headers(self, hooks[found[0]])
        teardowns = app.teardown_request_funcs.setdefault(None, [])
        found = [index for index, hook in enumerate(teardowns)
                 if getattr(hook, "__func__", None) is flask_limiter.Limiter._Limiter__release_context]
        if found:
            teardowns[found[0]] = release_context_if_used(teardowns[found[0]])

    @property
    def context(self):
        # What the gate counted goes into flask-limiter's request context when it is first asked for.
        return counted_context(self, super().context)

    def _check_request_limit(self, callable_name=None, in_middleware=True):
        # Before a gated view, flask-limiter's hook finds nothing to count (the view's limits are
        # its decorators'), and the gate counts them: skip the hook's lookups.
        if in_middleware and hasattr(current_app.view_functions.get(request.endpoint), "auth_schemes"):
            return
        super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)


# Instances the gate built before its app context had an ORM session (saas.core.database.attached).
WAITING_FOR_A_SESSION = "saas_waiting_for_a_session"


def wait_for_a_session(instance):
    """Leave ``instance`` (detached, with its identity) for the session its app context opens
    next, if the context has none yet: True. False when a session is open, or outside a context.
    Keyed by identity: a later read of the same row (a context that outlives its requests, in
    tests and scripts) replaces an earlier one, as merging it would."""
    if not has_app_context() or db.session.registry.has():
        return False
    g.setdefault(WAITING_FOR_A_SESSION, {})[instance_state(instance).key] = instance
    return True


class RequestSession(flask_sqlalchemy.session.Session):
    """flask-sqlalchemy's session, which takes in, when its app context first opens it, the
    instances the gate built there before then (``wait_for_a_session``: the caller and their
    personal organization): they join it as if it had loaded them. A request that never opens
    one (most reads) pays for neither. ``g`` lives exactly as long as the session's scope: the
    app context."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if has_app_context():
            for instance in g.pop(WAITING_FOR_A_SESSION, {}).values():
                self.add(instance)


db = SQLAlchemy(model_class=Base, session_options={"class_": RequestSession})
jwt = JWTManager()
cors = CORS()
api = EnvelopeApi()
limiter = PerAppLimiter(key_func=principal_or_ip_key)
