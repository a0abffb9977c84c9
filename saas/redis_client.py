"""The shared Redis connection and every Redis key the app builds."""
from flask import current_app
from redis import Redis


def init_redis(app):
    url = app.config["REDIS_URL"]
    timeout = app.config["REDIS_SOCKET_TIMEOUT"]
    app.extensions["redis"] = (
        Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout) if url else None
    )


def get_redis():
    """The app's Redis client, or None in the embedded (no ``REDIS_URL``) mode."""
    return current_app.extensions.get("redis")


class RedisKeys:
    """Every key name in one place, so nothing collides and ops can find them."""

    PREFIX = "saas"

    @classmethod
    def stripe_event_lock(cls, event_id):
        return f"{cls.PREFIX}:stripe-event-lock:{event_id}"
