"""Prometheus metrics at /metrics: request counts and latency by endpoint and status, RQ depth.

Under gunicorn with PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it), every worker
writes to that directory and a scrape sums them. /metrics is closed unless METRICS_TOKEN is
set, and then needs `Authorization: Bearer <METRICS_TOKEN>`.
"""
import functools
import hmac
import logging
import os

from flask import current_app
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from saas.core.errors import envelope
from saas.core.queue import queue_depths
from saas.web.requests import bearer_token

log = logging.getLogger(__name__)


def require_metrics_token(view):
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        expected = current_app.config["METRICS_TOKEN"]
        if not expected:
            return envelope(404, "Metrics are disabled: set METRICS_TOKEN to expose them."), 404
        given = bearer_token()
        if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            return envelope(401, "A valid metrics token is required."), 401, {"WWW-Authenticate": "Bearer"}
        return view(*args, **kwargs)

    return guarded


class QueueDepthCollector:
    """Reads the RQ queue lengths at scrape time, so the figure is never stale."""

    def __init__(self, connection):
        self.connection = connection

    def collect(self):
        gauge = GaugeMetricFamily("saas_rq_queue_depth", "Jobs waiting in an RQ queue.", labels=["queue"])
        try:
            for name, depth in queue_depths(self.connection).items():
                gauge.add_metric([name], depth)
        except Exception as error:  # a scrape must not fail because Redis is down
            log.warning("metrics: queue depth unavailable: %s", error.__class__.__name__)
        yield gauge


def init_metrics(app):
    options = dict(
        path="/metrics",
        group_by="endpoint",
        defaults_prefix="saas",
        metrics_decorator=require_metrics_token,
    )
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics = GunicornInternalPrometheusMetrics(app, **options)
    else:
        # One registry per app, so several apps in one process (tests) never collide.
        metrics = PrometheusMetrics(app, registry=CollectorRegistry(auto_describe=True), **options)
    redis = app.extensions.get("redis")
    if redis is not None:
        metrics.registry.register(QueueDepthCollector(redis))
    metrics.info("saas_app_info", "Application version.", version=app.config["APP_VERSION"])
    return metrics
