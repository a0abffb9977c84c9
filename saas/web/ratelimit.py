"""Rate limits in one round trip to Redis a request (bench/RESULTS.md, issue 28).

flask-limiter asks its storage once per limit to count a request, then twice more (GET, TTL) for
the window the X-RateLimit headers describe: three round trips for the one limit of
``GET /users/me``, more for a view with several. Two pieces bring a gated request to one, with
every limit counted exactly as flask-limiter counts it (same keys, same fixed windows, same
order, the same stop at the first breach):

- ``CountingFixedWindow``, flask-limiter's strategy when its storage is Redis: every count
  (``INCRBY`` and ``EXPIRE`` for a limit that counts every request, ``GET`` for one that counts
  only failures, ``deduct_when``) reads the window's TTL in the same script and remembers both
  for the rest of the request, so the headers cost no further question to Redis;
- ``count_gate_limits``, called by the gate (``saas.web.blueprint``): the caller's default limit
  and the view's own limits counted together in one script. The results go into flask-limiter's
  request context, so its after-request hook writes the headers and makes the conditional
  deductions (a failed password check) as it always has; where there are none to make,
  ``rate_limit_headers`` writes the same headers without the hook's four lookups of that context.

Whatever this path does not cover is left to flask-limiter's own: a storage that is down (its
in-process fallback, and its checks for the storage coming back), Redis Cluster (one script
cannot span its slots), the moving-window strategies, breach callbacks and meta limits.
"""
import os
import threading
import time

import redis
from redis.connection import HIREDIS_AVAILABLE
from flask import current_app, has_request_context, request
from flask.globals import request_ctx
from flask_limiter import RequestLimit
from flask_limiter.constants import HeaderNames
from flask_limiter.errors import RateLimitExceeded
from werkzeug.http import http_date
from limits import WindowStats
from limits.storage import RedisClusterStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter

_WINDOWS_KEY = "saas.rate_limit_windows"
# What count_gate_limits counted, until something asks flask-limiter's request context for it.
_COUNTED_KEY = "saas.rate_limit_counted"
_CONTEXT_ATTRIBUTE = "_limiter_request_context"  # where flask-limiter keeps its context on Flask's

# KEYS: the counters, in the order flask-limiter evaluates them. ARGV[1]: "1" to stop at the first
# breach (RATELIMIT_FAIL_ON_FIRST_BREACH); then, per counter: "1" to count the request (INCRBY,
# and EXPIRE on a new window, as limits' incr_expire.lua) or "0" to read it only (GET, as
# FixedWindowRateLimiter.test), the cost, the limit and the window in seconds.
# Returns, per counter read until the stop: {count, TTL in seconds, 1 if within the limit}.
COUNT_SCRIPT = """
local stop = ARGV[1] == "1"
local results = {}
for i, key in ipairs(KEYS) do
    local at = 2 + (i - 1) * 4
    local cost, amount = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    local count, within
    if ARGV[at] == "1" then
        count = redis.call("incrby", key, cost)
        if count == cost then
            redis.call("expire", key, ARGV[at + 3])
        end
        within = count <= amount
    else
        count = tonumber(redis.call("get", key) or "0")
        within = count < amount - cost + 1
    end
    results[i] = {count, redis.call("ttl", key), within and 1 or 0}
    if stop and not within then
        break
    end
end
return results
"""


if HIREDIS_AVAILABLE:  # what redis-py's connections pack with, without its wrapper
    from hiredis import pack_command as _hiredis_pack
else:
    _hiredis_pack = None


def counts_in_one_round_trip(storage):
    """Whether ``CountingFixedWindow`` can serve this storage: Redis (or Sentinel), not Cluster."""
    return isinstance(storage, RedisStorage) and not isinstance(storage, RedisClusterStorage)


def _windows():
    """The windows counted during this request, by counter key (none outside a request)."""
    if not has_request_context():
        return {}
    return request.environ.setdefault(_WINDOWS_KEY, {})


class CountingFixedWindow(FixedWindowRateLimiter):
    """The fixed-window strategy, each count in one script that also reads the window's expiry;
    the request's later questions about that window (the headers) are answered from it.

    Each thread sends the script on a connection of its own, made as the client's pool makes its
    connections, instead of through the client (which checks a connection out of its pool,
    polls it, runs the command through its retry and observability layers and checks it back
    in: a third of what counting a request cost, bench/RESULTS.md). Any error on that connection
    (Redis down or restarted, a script it no longer knows, a timeout: redis-py closes the
    connection on every one but a reply's) hands the count to the client, which then does
    exactly what it did before: its retries, its loading of the script, its errors. Pools that
    choose a server per connection (Sentinel), cache replies or are not redis-py's plain one
    always go through the client.
    """

    def __init__(self, storage):
        super().__init__(storage)
        client = storage.get_connection()
        self._script = client.register_script(COUNT_SCRIPT)
        pool = client.connection_pool
        self._pool = pool if type(pool) is redis.ConnectionPool and getattr(pool, "cache", None) is None else None
        self._threads = threading.local()

    def _connection(self):
        """This thread's own connection (None: count through the client)."""
        if self._pool is None:
            return None
        pid, connection = getattr(self._threads, "connection", (None, None))
        if pid != os.getpid():  # a forked child never writes on its parent's socket
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
            self._threads.connection = (os.getpid(), connection)
        return connection

    def _rows(self, keys, arguments):
        connection = self._connection()
        if connection is not None:
            try:
                command = ("EVALSHA", self._script.sha, len(keys), *keys, *arguments)
                connection.send_packed_command(
                    [_hiredis_pack(command)] if _hiredis_pack else connection.pack_command(*command))
                return connection.read_response()
            except Exception:  # (redis-py closed the connection if it failed: reconnected next time)
                pass
        return self._script(keys, arguments)

    def count(self, checks, stop_at_breach=True, remember=True):
        """``checks``: ``[(item, key, cost, counts_request)]``; per check read before the first
        breach (when ``stop_at_breach``): ``(count, window's TTL in seconds, within the limit)``.
        ``remember``: keep the windows for ``get_window_stats`` (or ``remember_windows`` later)."""
        arguments = ["1" if stop_at_breach else "0"]
        for item, _, cost, counts_request in checks:
            arguments += ["1" if counts_request else "0", cost, item.amount, item.get_expiry()]
        rows = self._rows([self.storage.prefixed_key(key) for _, key, _, _ in checks], arguments)
        if remember:
            remember_windows(checks, rows, time.time())
        return rows

    def hit(self, item, *identifiers, cost=1):
        return bool(self.count([(item, item.key_for(*identifiers), cost, True)])[0][2])

    def test(self, item, *identifiers, cost=1):
        return bool(self.count([(item, item.key_for(*identifiers), cost, False)])[0][2])

    def get_window_stats(self, item, *identifiers):
        window = _windows().get(item.key_for(*identifiers))
        return window if window is not None else super().get_window_stats(item, *identifiers)


def remember_windows(checks, rows, now):
    """The windows ``CountingFixedWindow.count`` read, for this request's ``get_window_stats``."""
    windows = _windows()
    for (item, key, _, _), (count, ttl, _) in zip(checks, rows):
        windows[key] = WindowStats(max(ttl, 0) + now, max(0, item.amount - count))


def count_gate_limits(limiter, limits):
    """Count a gated request against ``limits`` (flask-limiter ``limit()`` decorators) in one
    round trip, as flask-limiter's evaluation would; raises ``RateLimitExceeded`` on a breach.

    Returns False, having counted nothing, when flask-limiter must count them itself: its
    storage is down (or has just been found down) or is not one this path serves, or a limit
    uses what this path leaves to flask-limiter.

    What flask-limiter's request context would hold (the limits counted, the one the headers
    describe) is put there only when something asks for that context (``Counted.fill``): its
    after-request hook for a conditional deduction or a breach, ``limiter.current_limit``.
    """
    strategy = limiter.limiter  # the in-memory fallback while the storage is down
    if not isinstance(strategy, CountingFixedWindow) or limiter._on_breach or limiter._meta_limits:
        return False
    # (the gate counts only where RATELIMIT_ENABLED is on: PerAppLimiter's own filter is skipped)
    if any(check() for check in limiter._request_filters if check is not limiter.switched_off):
        return True
    endpoint, method, prefix = request.endpoint or "", request.method, limiter._key_prefix
    evaluated = []
    for limit in _runtime_limits(limits):
        if limit.on_breach or limit.meta_limits:
            return False
        if limit.is_exempt or limit.method_exempt:
            continue
        args = [limit.key_func(), limit.scope_for(endpoint, method)]
        if not all(args):
            limiter.logger.error("Skipping limit: %s. Empty value found in parameters.", limit.limit)
            continue
        if prefix:
            args = [prefix, *args]
        evaluated.append((limit, args))
    if not evaluated:
        return True
    checks = [(limit.limit, limit.limit.key_for(*args), limit.deduction_amount, limit.deduct_when is None)
              for limit, args in evaluated]
    try:
        rows = strategy.count(checks, stop_at_breach=limiter._fail_on_first_breach, remember=False)
    except limiter.storage.base_exceptions:
        # As flask-limiter does on a storage error: count in process memory from now on (it
        # checks, with backoff, whether the storage is back).
        limiter.logger.warning("Rate limit storage unreachable - falling back to in-memory storage")
        limiter._storage_dead = True
        return False
    counted = Counted(evaluated, checks, rows, time.time())
    if counted.breached is not None or counted.deducts_later:
        counted.fill(limiter, limiter.context)
    else:
        request.environ[_COUNTED_KEY] = counted
    if counted.breached is not None:
        limit, args = evaluated[counted.breached]
        limiter.logger.info("ratelimit %s (%s) exceeded at endpoint: %s", limit.limit, args[-2], args[-1])
        raise RateLimitExceeded(limit)
    return True


class Counted:
    """The limits ``count_gate_limits`` counted for a request: what flask-limiter's request
    context holds after it evaluates them, and the window of the one the headers describe."""

    def __init__(self, evaluated, checks, rows, now):
        """``rows``: ``CountingFixedWindow.count``'s, for the ``checks`` of the ``evaluated`` limits."""
        self.evaluated, self.checks, self.rows, self.now = evaluated, checks, rows, now
        self.within = []  # per limit read before a stop
        self.breached, self.deducts_later = None, False
        for index, ((limit, _), (_, _, within)) in enumerate(zip(evaluated, rows)):
            self.within.append(bool(within))
            if not within and self.breached is None:
                self.breached = index
            self.deducts_later = self.deducts_later or limit.deduct_when is not None
        if self.breached is not None:
            self.described = self.breached
        else:  # flask-limiter's choice: the view's own limit before a shared or default one
            self.described = next((index for index, (limit, _) in enumerate(evaluated) if not limit.shared), 0)
        count, ttl, _ = rows[self.described]
        self.amount = evaluated[self.described][0].limit.amount
        self.remaining = max(0, self.amount - count)
        self.reset_at = int(max(ttl, 0) + now + 1)  # RequestLimit.reset_at of that window

    def fill(self, limiter, context):
        """Put into flask-limiter's request ``context`` what its own evaluation would have."""
        remember_windows(self.checks, self.rows, self.now)  # what its RequestLimits will read
        view_limits = [RequestLimit(limiter, limit.limit, args, not ok, limit.shared)
                       for (limit, args), ok in zip(self.evaluated, self.within)]
        for limit, args in self.evaluated[:len(self.within)]:
            if limit.deduct_when is not None:
                context.conditional_deductions[limit] = args
        context.view_rate_limit = view_limits[self.described]
        context.view_rate_limits = view_limits


def counted_context(limiter, context):
    """flask-limiter's request ``context`` with what ``count_gate_limits`` left for it, if this
    request has something left (``PerAppLimiter.context`` answers through this)."""
    counted = request.environ.pop(_COUNTED_KEY, None)  # (a context is only had in a request)
    if counted is not None:
        counted.fill(limiter, context)
    return context


def _runtime_limits(limits):
    """The RuntimeLimits of ``limits`` for this app's configured values, in the order
    flask-limiter evaluates them; parsed and sorted once per set of values."""
    values = tuple((id(limit), _value(limit.limit_provider)) for limit in limits)
    cache = current_app.extensions.setdefault("gate_rate_limits", {})
    found = cache.get(values)
    if found is None:
        runtime = [item for limit in limits for item in limit]
        found = cache[values] = tuple(sorted(runtime, key=lambda item: item.limit))
    return found


def _value(provider):
    return provider() if callable(provider) else provider


def rate_limit_headers(limiter, flask_limiter_hook):
    """flask-limiter's after-request hook (``flask_limiter_hook``, which writes the X-RateLimit
    headers and makes the conditional deductions), answering itself for a request whose limits
    ``count_gate_limits`` counted with nothing left to do but the headers: the same headers from
    the same window, without flask-limiter's request context (bench/RESULTS.md). Anything else
    (a response that already has ``Retry-After``, headers turned off, a request whose context was
    asked for) is the hook's. tests/test_abuse.py compares the two."""

    def write_rate_limit_headers(response):
        counted = request.environ.get(_COUNTED_KEY)
        if (counted is None or not (limiter.enabled and limiter._headers_enabled and limiter._header_mapping)
                or _has_retry_after(response)):
            return flask_limiter_hook(response)
        limit, remaining, reset, retry_after = _header_names(limiter._header_mapping)
        reset_at = counted.reset_at
        response.headers.add(limit, str(counted.amount))
        response.headers.add(remaining, str(counted.remaining))
        response.headers.add(reset, str(reset_at))
        response.headers.set(retry_after, str(
            http_date(reset_at) if limiter._retry_after == "http-date" else int(reset_at - time.time())
        ))
        return response

    write_rate_limit_headers.flask_limiter_hook = flask_limiter_hook
    return write_rate_limit_headers


def release_context_if_used(flask_limiter_release):
    """flask-limiter's teardown (it empties its request context), run only for a request whose
    context exists: emptying one that was never made would make it first."""

    def release_rate_limit_context(exception=None):
        if hasattr(request_ctx, _CONTEXT_ATTRIBUTE):
            flask_limiter_release(exception)

    release_rate_limit_context.flask_limiter_release = flask_limiter_release
    return release_rate_limit_context


_last_header_names = (None, ())  # (flask-limiter's mapping, its names): the limiter has one


def _header_names(mapping):
    """The names of the limit, remaining, reset and Retry-After headers in flask-limiter's
    ``mapping``, looked up again only when the mapping changes (an enum's hash is Python code)."""
    global _last_header_names
    last = _last_header_names  # (one read: a pair another thread may replace, never half of it)
    if last[0] is not mapping:
        last = _last_header_names = (mapping, tuple(mapping[name] for name in (
            HeaderNames.LIMIT, HeaderNames.REMAINING, HeaderNames.RESET, HeaderNames.RETRY_AFTER)))
    return last[1]


def _has_retry_after(response):
    # Headers' ``in`` builds a werkzeug exception for every missing name: compare the names.
    return any(name.lower() == "retry-after" for name, _ in response.headers.items())
