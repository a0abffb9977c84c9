"""The app's one Redis client.

Every other module reaches Redis through ``get_redis()`` (RQ through ``saas.core.queue``);
flask-limiter keeps its own connection to RATELIMIT_STORAGE_URI.
"""
from flask import current_app
from redis import Redis
from redis.driver_info import DriverInfo

# What each new connection tells Redis about its client (CLIENT SETINFO). Given to redis-py once:
# a client built from a URL otherwise reads the package's version from its installed metadata for
# every new connection, 3 ms each time, and a worker's horse opens a new connection for every job.
_DRIVER_INFO = DriverInfo()


def connect(url, socket_timeout, connect_timeout=None):
    """A client of the Redis at ``url``; ``socket_timeout`` None waits for answers indefinitely
    (the worker blocks on an empty queue for minutes)."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout or socket_timeout,
        driver_info=_DRIVER_INFO,
    )


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
