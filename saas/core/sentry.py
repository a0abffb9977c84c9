"""Optional error reporting to Sentry, on when SENTRY_DSN is set.

The SDK is imported only then: a process without Sentry does not carry it (3 MB).
"""

# Our own names for secrets, beyond Sentry's defaults (which match whole key names only).
SECRET_NAMES = [
    "access_token", "refresh_token", "current_password", "hashed_password", "raw_token", "raw_key",
    "key_hash", "stripe_signature", "messages",
]


def init_sentry(app):
    if not app.config["SENTRY_DSN"]:
        return False
    import sentry_sdk  # noqa: PLC0415 (see the module docstring)
    from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: PLC0415
    from sentry_sdk.integrations.rq import RqIntegration  # noqa: PLC0415
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber  # noqa: PLC0415

    sentry_sdk.init(
        dsn=app.config["SENTRY_DSN"],
        environment=app.config["APP_ENV"],
        release=app.config["APP_VERSION"],
        integrations=[FlaskIntegration(), RqIntegration()],
        traces_sample_rate=app.config["SENTRY_TRACES_SAMPLE_RATE"],
        send_default_pii=False,  # no emails, IPs or headers (tokens) leave the service
        # Request bodies (passwords, prompts) and frame locals (tokens) are never sent.
        max_request_body_size="never",
        include_local_variables=False,
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + SECRET_NAMES, recursive=True),
    )
    return True
