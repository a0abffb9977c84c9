"""The app's Flask class."""
import inspect
from types import FunctionType

from flask import Flask


class ApiFlask(Flask):
    """Flask, whose ``ensure_sync`` answers at once for a plain function: Flask asks it of every
    view, hook and handler it calls (nine times for ``GET /users/me``), and ``inspect`` unwraps
    partials and methods to find the answer each time (bench/RESULTS.md). A plain function is a
    coroutine function when its code says so, or when it is marked as one (Python 3.12's
    ``inspect.markcoroutinefunction``); anything else is Flask's to decide."""

    def ensure_sync(self, func):
        if (type(func) is FunctionType and not func.__code__.co_flags & inspect.CO_COROUTINE
                and not hasattr(func, "_is_coroutine_marker")):
            return func
        return super().ensure_sync(func)
