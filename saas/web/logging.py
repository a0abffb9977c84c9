"""JSON logs for the app: every record made while a request is served carries its id.

The one line per request itself is written by the edge (``saas.web.edge``).
"""
from saas.core.logging import configure_json_logging
from saas.web.edge import RequestIdFilter


def init_logging(app):
    configure_json_logging(app.config["LOG_LEVEL"], filters=[RequestIdFilter()])
