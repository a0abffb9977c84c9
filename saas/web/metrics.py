"""Prometheus metrics: request latency by endpoint, method and status, RQ queue depth, app info.

The edge (``saas.web.edge``) observes each request; ``GET /metrics`` renders them. Under
gunicorn with PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it) every worker writes its
samples to that directory and a scrape sums them. /metrics is closed unless METRICS_TOKEN is
set, and then needs `Authorization: Bearer <METRICS_TOKEN>`.
"""
import hmac
import logging
import os

from flask import Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from saas.core.errors import envelope
from saas.core.queue import queue_depths
from saas.web.requests import bearer_token

log = logging.getLogger(__name__)

# Each label value makes a series, kept for the life of the process (of the multiprocess
# directory under gunicorn): a value the client chooses must come from a fixed set.
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
OTHER_METHOD = "other"
UNMATCHED_ENDPOINT = "unmatched"  # the endpoint of a request no route matched, whatever its path


def method_label(method):
    """The request method as a label: one of the standard methods, else ``other``."""
    method = method.upper()
    return method if method in STANDARD_METHODS else OTHER_METHOD


class RequestMetrics:
    """What the edge records per request. In multiprocess mode the samples go to the shared
    directory; otherwise to a registry of this app's own, so several apps in one process (tests)
    never mix their counts."""

    def __init__(self, multiprocess):
        self.registry = None if multiprocess else CollectorRegistry()
        self.duration = Histogram(
            "saas_http_request_duration_seconds", "Time to answer a request.",
            ["endpoint", "method", "status"], registry=self.registry,
        )
        self.total = Counter(
            "saas_http_request_total", "Requests answered.", ["method", "status"], registry=self.registry,
        )
        # The series of each label set, looked up once: ``labels()`` checks and locks on every call.
        # Bounded as the labels are (the routes, the methods' fixed set, the statuses).
        self._series = {}

    def observe(self, endpoint, method, status, seconds):
        """``endpoint``: the matched route's (or None); ``method`` as the client sent it."""
        labels = (endpoint or UNMATCHED_ENDPOINT, method_label(method), status)
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = (self.duration.labels(*labels), self.total.labels(*labels[1:]))
        duration, total = series
        duration.observe(seconds)
        total.inc()


class AppCollector:
    """Read at scrape time: the RQ queue lengths (never stale) and the app's version."""

    def __init__(self, redis, version):
        self.redis = redis
        self.version = version

    def collect(self):
        info = GaugeMetricFamily("saas_app_info", "Application version.", labels=["version"])
        info.add_metric([self.version], 1)
        yield info
        if self.redis is None:
            return
        gauge = GaugeMetricFamily("saas_rq_queue_depth", "Jobs waiting in an RQ queue.", labels=["queue"])
        try:
            for name, depth in queue_depths(self.redis).items():
                gauge.add_metric([name], depth)
        except Exception as error:  # a scrape must not fail because Redis is down
            log.warning("metrics: queue depth unavailable: %s", error.__class__.__name__)
        yield gauge


def init_metrics(app):
    """The app's RequestMetrics (for the edge), and the /metrics endpoint."""
    multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    metrics = RequestMetrics(multiprocess)
    app_registry = CollectorRegistry()
    app_registry.register(AppCollector(app.extensions.get("redis"), app.config["APP_VERSION"]))

    def scrape():
        """Prometheus text format: every worker's samples, then the app's own gauges."""
        expected = current_app.config["METRICS_TOKEN"]
        if not expected:
            return envelope(404, "Metrics are disabled: set METRICS_TOKEN to expose them."), 404
        given = bearer_token()
        if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            return envelope(401, "A valid metrics token is required."), 401, {"WWW-Authenticate": "Bearer"}
        if multiprocess:
            requests_registry = CollectorRegistry()
            MultiProcessCollector(requests_registry)
        else:
            requests_registry = metrics.registry
        body = generate_latest(requests_registry) + generate_latest(app_registry)
        return Response(body, content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", scrape)
    return metrics
