"""Bulkheads: at most so many calls to one outside service at once, per process.

A hung outside service (Stripe, the model provider) would otherwise take every request thread,
and then even /health/live stops answering. Past its limit a call is refused at once, with a
503 and Retry-After, so the threads left keep serving everything else.
"""
import contextlib
import threading

from flask import current_app

from saas.core.errors import ServiceUnavailable


class ServiceBusy(ServiceUnavailable):
    headers = {"Retry-After": "2"}


class Bulkhead:
    def __init__(self, service, limit):
        self.service = service
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def enter(self):
        """Take a slot or refuse with ServiceBusy; the caller gives it back with ``leave``."""
        if not self._slots.acquire(blocking=False):
            raise ServiceBusy(f"Too many calls to {self.service} are in progress; try again shortly.")

    def leave(self):
        self._slots.release()

    @contextlib.contextmanager
    def slot(self):
        self.enter()
        try:
            yield
        finally:
            self.leave()


def init_bulkheads(app, limits):
    """``limits``: ``{key: (service name, limit)}``."""
    app.extensions["bulkheads"] = {key: Bulkhead(name, limit) for key, (name, limit) in limits.items()}


def bulkhead(key):
    return current_app.extensions["bulkheads"][key]
