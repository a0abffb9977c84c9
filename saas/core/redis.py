"""The app's one Redis client.

Every other module reaches Redis through ``get_redis()`` (RQ through ``saas.core.queue``);
flask-limiter keeps its own connection to RATELIMIT_STORAGE_URI.
"""
from flask import current_app
from redis import Redis


def connect(url, socket_timeout):
    return Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)


def init_redis(app):
    url = app.config["REDIS_URL"]
    app.extensions["redis"] = connect(url, app.config["REDIS_SOCKET_TIMEOUT"]) if url else None


def get_redis():
    """The app's Redis client, or None in the embedded (no ``REDIS_URL``) mode."""
    return current_app.extensions.get("redis")


class RedisKeys:
    """The names of the keys the app itself keeps in Redis (RQ and flask-limiter name theirs)."""

    PREFIX = "saas"
    # Held for one sweep interval by the worker that queued the sweep, so N workers queue one.
    SWEEP_LOCK = f"{PREFIX}:sweep-lock"
