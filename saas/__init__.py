"""saas: a production Flask backend for AI SaaS products."""
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import config_for_env
from saas.extensions import api, cors, db, jwt, limiter, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config=None):
    """Build the app. ``config`` is a config object, an APP_ENV name, or None for APP_ENV.

    Extensions are bound and blueprints registered here; nothing else happens at import time.
    """
    if config is None or isinstance(config, str):
        config = config_for_env(config)
    config.validate()

    app = Flask(__name__)
    app.config.from_object(config)
    app.config.update(
        APP_ENV=config.APP_ENV,
        TESTING=config.TESTING,
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 1, "socket_connect_timeout": 1},
    )
    app.json.sort_keys = False
    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    _init_extensions(app)
    _register_blueprints(app)
    _register_cli(app)
    return app


def _init_extensions(app):
    from saas.auth.callbacks import register_token_callbacks
    from saas.errors import register_error_handlers
    from saas.logging import init_logging
    from saas.metrics import init_metrics
    from saas.observability import init_sentry
    from saas.redis_client import init_redis
    from saas.security_headers import init_security_headers

    init_logging(app)
    init_sentry(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    jwt.init_app(app)
    register_token_callbacks(jwt)
    cors.init_app(
        app,
        resources={r"/*": {"origins": app.config["ALLOWED_ORIGINS"]}},
        supports_credentials=False,
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    limiter.init_app(app)
    init_redis(app)
    api.init_app(app)
    init_security_headers(app)
    init_metrics(app)
    register_error_handlers(app)


def _register_blueprints(app):
    from saas.ai.routes import blp as ai_blp
    from saas.apikeys.routes import blp as api_keys_blp
    from saas.auth.routes import blp as auth_blp
    from saas.billing.routes import blp as billing_blp
    from saas.system.routes import blp as system_blp
    from saas.usage.routes import blp as usage_blp
    from saas.users.routes import blp as users_blp

    for blueprint in (system_blp, auth_blp, users_blp, api_keys_blp, billing_blp, ai_blp, usage_blp):
        api.register_blueprint(blueprint)


def _register_cli(app):
    from saas.auth.cli import auth_cli
    from saas.billing.cli import billing_cli
    from saas.users.cli import users_cli

    app.cli.add_command(auth_cli)
    app.cli.add_command(billing_cli)
    app.cli.add_command(users_cli)
