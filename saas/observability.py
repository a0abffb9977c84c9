"""Optional error reporting to Sentry, on when SENTRY_DSN is set."""
import sentry_sdk
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.rq import RqIntegration


def init_sentry(app):
    if not app.config["SENTRY_DSN"]:
        return False
    sentry_sdk.init(
        dsn=app.config["SENTRY_DSN"],
        environment=app.config["APP_ENV"],
        release=app.config["APP_VERSION"],
        integrations=[FlaskIntegration(), RqIntegration()],
        traces_sample_rate=app.config["SENTRY_TRACES_SAMPLE_RATE"],
        send_default_pii=False,  # no emails, IPs or headers (tokens) leave the service
    )
    return True
