"""Issue 27, item 5: the places where the app relies on a library's internals, each held by a
test that fails loudly when an upgrade changes them (everything else uses public extension points:
the operationIds come from an apispec plugin, the worker overrides RQ's ``main_work_horse``).

- ``saas.web.api.EnvelopeApi._register_pagination_header`` (flask-smorest): documents ``X-Pagination`` as
  JSON ``content``; flask-smorest documents it with ``schema``, which means the "simple" style.
- ``saas.extensions.PerAppLimiter`` resets flask-limiter's ``_storage_dead`` for each app it is bound
  to, so an app never inherits another app's "storage is down" verdict in one process, nor the
  backoff of its looks for that storage (the name-mangled ``Limiter.__check_backend_count`` and
  ``__last_check_backend``).
- ``saas.extensions.PerAppLimiter`` puts ``saas.web.ratelimit.CountingFixedWindow`` in flask-limiter's
  ``_limiter`` (its strategy) when the storage is Redis, and the gate counts in one round trip
  (``count_gate_limits``) from flask-limiter's request context and settings (``context``,
  ``_fail_on_first_breach``, ``_key_prefix``...): every gated request with limits on reads them, so
  a rename fails the rate-limit tests at once; the strategy is held here.
- ``saas.extensions.PerAppLimiter`` wraps flask-limiter's after-request hook (the name-mangled
  ``Limiter.__inject_headers``, found in ``after_request_funcs``) with
  ``saas.web.ratelimit.rate_limit_headers``, which reads ``_header_mapping``, ``_headers_enabled``
  and ``_retry_after``; tests/test_abuse.py compares their headers. It also runs flask-limiter's
  teardown (``Limiter.__release_context``) only for a request whose context (kept on Flask's request
  context as ``_limiter_request_context``) was made, and fills that context with what the gate
  counted when it is first asked for (``PerAppLimiter.context``).
- ``saas.web.cors.init_cors`` wraps flask-cors's after-request function (``cors_after_request``)
  and raises at start-up when it is not found; tests/test_cors.py compares the headers.
- ``saas.web.flask_app.ApiFlask.ensure_sync`` answers plain functions itself (held below).
- ``saas.core.database.loaded`` sets a new instance's identity key itself where SQLAlchemy's
  ``make_transient_to_detached`` would also commit and expire: tests/test_gate.py compares the two
  states attribute by attribute. ``_lookup_connection`` reads the pool's ``_recycle`` to give a
  kept connection back in time: tests/test_gate.py's recycling test fails without it.
- ``saas.worker`` replaces RQ's module-level ``rq.scheduler.run`` so the scheduler process exits
  quietly when Redis goes away: held by tests/test_self_repair.py, which requires every line the
  worker writes about Redis to be JSON.
"""
import flask_limiter
import pytest
import redis

from saas.extensions import limiter
from saas.web import ratelimit
from saas.web.ratelimit import CountingFixedWindow
from tests.conftest import make_app
from tests.helpers import sign_up

CLOSED_REDIS = "redis://127.0.0.1:1/0"


def test_x_pagination_is_documented_as_json_content():
    spec = make_app(DATABASE_URL="sqlite://", REDIS_URL="").test_client().get("/openapi.json").get_json()
    header = spec["components"]["headers"]["PAGINATION"]
    assert "schema" not in header, "flask-smorest no longer calls EnvelopeApi._register_pagination_header: update it"
    assert header["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PaginationMetadata"}


def test_an_app_does_not_inherit_another_apps_dead_rate_limit_storage(database, redis_url):
    down = make_app(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=CLOSED_REDIS, REDIS_URL="")
    with down.app_context():
        sign_up(down.test_client(), "down@example.com")  # counted in memory: the storage is down
    assert getattr(limiter, "_storage_dead", None) is True, (
        "flask-limiter no longer marks its storage dead in `_storage_dead`: update saas.extensions.PerAppLimiter"
    )

    up = make_app(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=redis_url)
    with up.app_context():
        sign_up(up.test_client(), "up@example.com")
    assert redis.Redis.from_url(redis_url).keys("LIMITS*"), "the second app counted in memory, not in Redis"


def test_an_app_does_not_inherit_another_apps_backoff_between_looks_for_its_storage(database, redis_url):
    assert hasattr(flask_limiter.Limiter, "_Limiter__should_check_backend"), (
        "flask-limiter no longer backs off with `__should_check_backend`: update saas.extensions.PerAppLimiter"
    )
    make_app(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=redis_url)
    assert limiter._Limiter__check_backend_count == 0
    limiter._Limiter__check_backend_count, limiter._Limiter__last_check_backend = 5, 0.0  # an earlier app's outage
    make_app(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=redis_url)
    assert limiter._Limiter__check_backend_count == 0 and limiter._Limiter__last_check_backend > 0.0


def test_the_limiter_counts_with_the_one_round_trip_strategy_on_redis(database, redis_url):
    make_app(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=redis_url)
    assert isinstance(limiter.limiter, CountingFixedWindow), (
        "flask-limiter no longer keeps its strategy in `_limiter`: update saas.extensions.PerAppLimiter"
    )


def test_redis_replies_are_parsed_by_hiredis(database, redis_url):
    """hiredis is in requirements.txt for speed alone: redis-py picks it up when installed, and
    says nothing when it does not. The rate limits' client and the jobs' both parse with it."""
    app = make_app(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=redis_url)
    clients = {"rate limits": limiter.limiter.storage.get_connection(), "jobs": app.extensions["redis"]}
    for name, client in clients.items():
        connection = client.connection_pool.get_connection()
        try:
            assert type(connection._parser).__name__ == "_HiredisParser", f"{name}: {type(connection._parser)}"
        finally:
            client.connection_pool.release(connection)


def test_ensure_sync_answers_as_flask_does():
    """``saas.web.flask_app.ApiFlask.ensure_sync`` answers plain functions itself; for every kind
    of callable its answer must be Flask's."""
    import functools

    from flask import Flask

    from saas.web.flask_app import ApiFlask

    def plain():
        return "plain"

    async def coroutine():
        return "coroutine"

    def marked():
        return "marked"

    marked._is_coroutine_marker = object()  # as inspect.markcoroutinefunction marks it (3.12+)
    app = ApiFlask(__name__)
    for func in (plain, coroutine, functools.partial(coroutine), functools.partial(plain), marked, print):
        try:
            theirs = Flask.ensure_sync(app, func)
        except RuntimeError as error:  # Flask without its async extra
            with pytest.raises(RuntimeError, match=str(error)[:20]):
                app.ensure_sync(func)
            continue
        ours = app.ensure_sync(func)
        assert (ours is func) == (theirs is func), func
    assert app.ensure_sync(plain) is plain


def test_flask_limiters_header_hook_is_found_and_wrapped(database, redis_url):
    app = make_app(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=redis_url)
    wrapped = [hook for hook in app.after_request_funcs[None] if hasattr(hook, "flask_limiter_hook")]
    assert len(wrapped) == 1, (
        "flask-limiter's Limiter.__inject_headers is no longer in after_request_funcs: update saas.extensions.PerAppLimiter"
    )


def test_flask_limiters_teardown_is_found_and_wrapped(database, redis_url):
    app = make_app(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=redis_url)
    wrapped = [hook for hook in app.teardown_request_funcs[None] if hasattr(hook, "flask_limiter_release")]
    assert len(wrapped) == 1, (
        "flask-limiter's Limiter.__release_context is no longer in teardown_request_funcs: update saas.extensions.PerAppLimiter"
    )
    assert "_limiter_request_context" in flask_limiter.Limiter.context.fget.__code__.co_names, (
        "flask-limiter no longer keeps its request context in _limiter_request_context: update saas.web.ratelimit"
    )


def test_the_counting_script_is_packed_as_redis_pys_connections_pack_it(database, redis_url):
    """saas.web.ratelimit sends the script on a connection of its own, packed by hiredis directly."""
    make_app(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=redis_url)
    strategy = limiter.limiter
    connection = strategy._connection()
    command = ("EVALSHA", strategy._script.sha, 2, "LIMITS:LIMITER/user:1/a", "LIMITS:LIMITER/b", "1", "1", 1, 600, 60)
    assert ratelimit._hiredis_pack is not None
    assert ratelimit._hiredis_pack(command) == b"".join(connection.pack_command(*command))
