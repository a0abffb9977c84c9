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
import time

from flask import current_app, has_request_context, request
from flask_limiter import RequestLimit
from flask_limiter.constants import HeaderNames
from flask_limiter.errors import RateLimitExceeded
from werkzeug.http import http_date
from limits import WindowStats
from limits.storage import RedisClusterStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter

_WINDOWS_KEY = "saas.rate_limit_windows"
_COUNTED_KEY = "saas.rate_limit_counted"  # the limit the headers describe, for rate_limit_headers

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
    the request's later questions about that window (the headers) are answered from it."""

    def __init__(self, storage):
        super().__init__(storage)
        self._script = storage.get_connection().register_script(COUNT_SCRIPT)

    def count(self, checks, stop_at_breach=True):
        """``checks``: ``[(item, key, cost, counts_request)]``; whether each was within its
        limit, for those read before the first breach (when ``stop_at_breach``)."""
        arguments = ["1" if stop_at_breach else "0"]
        for item, _, cost, counts_request in checks:
            arguments += ["1" if counts_request else "0", cost, item.amount, item.get_expiry()]
        rows = self._script([self.storage.prefixed_key(key) for _, key, _, _ in checks], arguments)
        now, windows = time.time(), _windows()
        for (item, key, _, _), (count, ttl, _) in zip(checks, rows):
            windows[key] = WindowStats(max(ttl, 0) + now, max(0, item.amount - count))
        return [bool(within) for _, _, within in rows]

    def hit(self, item, *identifiers, cost=1):
        return self.count([(item, item.key_for(*identifiers), cost, True)])[0]

    def test(self, item, *identifiers, cost=1):
        return self.count([(item, item.key_for(*identifiers), cost, False)])[0]

    def get_window_stats(self, item, *identifiers):
        window = _windows().get(item.key_for(*identifiers))
        return window if window is not None else super().get_window_stats(item, *identifiers)


def count_gate_limits(limiter, limits):
    """Count a gated request against ``limits`` (flask-limiter ``limit()`` decorators) in one
    round trip, as flask-limiter's evaluation would; raises ``RateLimitExceeded`` on a breach.

    Returns False, having counted nothing, when flask-limiter must count them itself: its
    storage is down (or has just been found down) or is not one this path serves, or a limit
    uses what this path leaves to flask-limiter.
    """
    strategy = limiter.limiter  # the in-memory fallback while the storage is down
    if not isinstance(strategy, CountingFixedWindow) or limiter._on_breach or limiter._meta_limits:
        return False
    if any(check() for check in limiter._request_filters):
        return True
    endpoint, method, prefix = request.endpoint or "", request.method, limiter._key_prefix
    evaluated = []
    for limit in sorted(_runtime_limits(limits), key=lambda runtime: runtime.limit):
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
        within = strategy.count(checks, stop_at_breach=limiter._fail_on_first_breach)
    except limiter.storage.base_exceptions:
        # As flask-limiter does on a storage error: count in process memory from now on (it
        # checks, with backoff, whether the storage is back).
        limiter.logger.warning("Rate limit storage unreachable - falling back to in-memory storage")
        limiter._storage_dead = True
        return False
    context = limiter.context
    view_limits = []
    for (limit, args), ok in zip(evaluated, within):
        if limit.deduct_when is not None:
            context.conditional_deductions[limit] = args
        view_limits.append(RequestLimit(limiter, limit.limit, args, not ok, limit.shared))
    breached = next(((limit, request_limit) for (limit, _), request_limit in zip(evaluated, view_limits)
                     if request_limit.breached), None)
    if breached is not None:
        context.view_rate_limit = breached[1]
    else:
        explicit = [request_limit for request_limit in view_limits if not request_limit.shared]
        context.view_rate_limit = explicit[0] if explicit else view_limits[0]
    context.view_rate_limits = view_limits
    if not context.conditional_deductions:
        request.environ[_COUNTED_KEY] = context.view_rate_limit
    if breached is not None:
        limit, request_limit = breached
        limiter.logger.info("ratelimit %s (%s) exceeded at endpoint: %s", limit.limit, request_limit.request_args[-2],
                 request_limit.request_args[-1])
        raise RateLimitExceeded(limit)
    return True


def _runtime_limits(limits):
    """The RuntimeLimits of ``limits`` for this app's configured values, parsed once per value."""
    cache = current_app.extensions.setdefault("gate_rate_limits", {})
    found = []
    for limit in limits:
        provider = limit.limit_provider
        value = provider() if callable(provider) else provider
        runtime = cache.get((id(limit), value))
        if runtime is None:
            runtime = cache[(id(limit), value)] = tuple(limit)
        found.extend(runtime)
    return found


def rate_limit_headers(limiter, flask_limiter_hook):
    """flask-limiter's after-request hook (``flask_limiter_hook``, which writes the X-RateLimit
    headers and makes the conditional deductions), answering itself for a request whose limits
    ``count_gate_limits`` counted with none to make: the same headers from the same limit, without
    the hook's lookups of flask-limiter's request context (bench/RESULTS.md). Anything else (a
    response that already has ``Retry-After``, headers turned off, a limit flask-limiter chose
    since) is the hook's. tests/test_abuse.py compares the two."""

    def write_rate_limit_headers(response):
        counted = request.environ.get(_COUNTED_KEY)
        if (counted is None or not (limiter.enabled and limiter._headers_enabled and limiter._header_mapping)
                or "Retry-After" in response.headers or limiter.context.view_rate_limit is not counted):
            return flask_limiter_hook(response)
        try:
            reset_at, remaining = counted.reset_at, counted.remaining
        except Exception:  # the window could not be read: the hook's own handling
            return flask_limiter_hook(response)
        names = limiter._header_mapping
        response.headers.add(names[HeaderNames.LIMIT], str(counted.limit.amount))
        response.headers.add(names[HeaderNames.REMAINING], str(remaining))
        response.headers.add(names[HeaderNames.RESET], str(reset_at))
        response.headers.set(names[HeaderNames.RETRY_AFTER], str(
            http_date(reset_at) if limiter._retry_after == "http-date" else int(reset_at - time.time())
        ))
        return response

    write_rate_limit_headers.flask_limiter_hook = flask_limiter_hook
    return write_rate_limit_headers
