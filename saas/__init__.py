"""saas: a production Flask backend for AI SaaS products."""
import os

from sqlalchemy.orm import configure_mappers
from werkzeug.middleware.proxy_fix import ProxyFix

from config import MIGRATIONS_DIR, Config
from saas import admin, ai, apikeys, auth, billing, oauth, orgs, sso, system, usage, users, webhooks
from saas.apikeys.credentials import api_key_authenticator
from saas.apikeys.service import connect_signals as connect_api_key_signals
from saas.auth.cli import auth_cli
from saas.auth.credentials import session_authenticator
from saas.auth.service import connect_signals as connect_session_signals
from saas.billing.cli import billing_cli
from saas.billing.jobs import connect_signals as connect_billing_signals
from saas.core.bulkhead import init_bulkheads
from saas.core.database import enforce_sqlite_foreign_keys
from saas.core.queue import set_inline_runner
from saas.core.redis import init_redis
from saas.core.sentry import init_sentry
from saas.extensions import api, db, jwt, limiter
from saas.mail import init_mail
from saas.mail.cli import mail_cli
from saas.usage import cli as usage_cli  # noqa: F401  (adds `flask billing report-usage`)
from saas.usage.service import connect_signals as connect_usage_signals
from saas.ai.service import connect_signals as connect_ai_signals
from saas.orgs import accounts as org_accounts, invitations as org_invitations, service as org_service
from saas.users import addresses, recovery
from saas.users.cli import users_cli
from saas.webhooks import events as webhook_events, outbox as webhook_outbox, service as webhook_service
from saas.web.cors import init_cors
from saas.web.blueprint import OrgAccess, register_authenticators, register_org_access
from saas.web.docs import blp as docs_assets_blp, docs_page_policies
from saas.web.errors import register_error_handlers
from saas.web.json import JSONProvider
from saas.web.logging import init_logging
from saas.web.flask_app import ApiFlask
from saas.web.edge import ApiRequest, Edge, NoCookieSessions, run_after_response
from saas.web.metrics import init_metrics

API_PREFIX = "/api/v1"


def create_app(config=None):
    """Build the app from ``config`` (a ``Config``; None reads the environment).

    Extensions are bound, blueprints registered and packages wired together here; nothing else
    happens at import time.
    """
    config = config or Config.from_env()
    config.validate()

    # Templates: Swagger UI's page, in place of flask-smorest's (see saas/web/docs.py).
    app = ApiFlask(__name__, template_folder="web/templates")
    app.request_class = ApiRequest
    app.session_interface = NoCookieSessions()
    app.config.update(config.flask_config())
    app.json = JSONProvider(app)
    app.json.sort_keys = False

    metrics = _init_extensions(app, config)
    _register_blueprints(app)
    # Every model is imported by now: finish the mappers here, once, instead of in whichever
    # request first builds an instance (the gate builds the caller's without the constructor,
    # which would otherwise find them unconfigured: saas/core/database.py ``loaded``).
    configure_mappers()
    _connect_packages(app)
    _register_cli(app)

    # Outermost last: ProxyFix sets the client's address before the edge logs it.
    app.wsgi_app = Edge(
        app.wsgi_app,
        metrics=metrics,
        production=app.config["APP_ENV"] == "production",
        page_policies=docs_page_policies(app.config),
        cors_headers=app.extensions["cors_headers_without_origin"],
    )
    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    return app


def _init_extensions(app, config):
    init_logging(app)
    init_sentry(app)
    enforce_sqlite_foreign_keys()
    db.init_app(app)
    if os.environ.get("FLASK_RUN_FROM_CLI") == "true":  # set by Flask's CLI for every `flask` command
        init_migrations(app)
    jwt.init_app(app)
    app.extensions["cors_headers_without_origin"] = init_cors(app)
    limiter.init_app(app)
    init_redis(app)
    set_inline_runner(app, run_after_response)
    init_mail(app)
    oauth.init_app(app, config.oauth)
    sso.init_app(app, config.oauth)
    webhooks.init_webhooks(app)
    init_bulkheads(app, {
        "stripe": ("Stripe", app.config["STRIPE_MAX_CONCURRENT"]),
        "ai": ("the model provider", app.config["AI_MAX_CONCURRENT_CALLS"]),
    })
    api.init_app(app)
    register_error_handlers(app)
    return init_metrics(app)


def init_migrations(app):
    """Bind Flask-Migrate (``flask db ...``). Only the `flask` command needs it, so the servers and
    workers never import Alembic (11 MB a process); the readiness check reads the migration
    files itself (``saas/system/migrations.py``)."""
    # Imported here so that processes that never migrate never load it (see the docstring).
    from flask_migrate import Migrate

    Migrate(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)


def _register_blueprints(app):
    app.register_blueprint(docs_assets_blp)
    api.register_blueprint(system.blp)
    blueprints = [package.blp for package in (auth, oauth, users, orgs, apikeys, billing, ai, usage, admin)]
    blueprints += [oauth.identities_blp, orgs.invitations_blp, apikeys.org_keys_blp, billing.org_billing_blp,
                   usage.org_usage_blp]
    blueprints += [webhooks.blp, webhooks.event_types_blp]
    blueprints += [sso.blp, sso.org_sso_blp]
    for blueprint in blueprints:
        api.register_blueprint(blueprint, url_prefix=API_PREFIX + blueprint.url_prefix)


def _connect_packages(app):
    """The gate's authenticators and the reactions to account events (``saas.users.events``)."""
    # An API key wins when a request carries both (scripts that also hold a session token).
    register_authenticators(app, [api_key_authenticator, session_authenticator])
    register_org_access(app, OrgAccess(
        member=org_service.member_access, acting=org_service.acting_access, check=org_service.check_permission,
        policy=org_service.org_policy,
    ))
    org_service.connect_signals()
    org_accounts.connect_signals()
    org_invitations.connect_mail()
    connect_session_signals()
    oauth.connect_signals()
    sso.connect_signals()
    connect_api_key_signals()
    connect_billing_signals()
    connect_usage_signals()
    connect_ai_signals()
    webhook_events.connect_signals()
    webhook_service.connect_signals()
    webhook_outbox.connect_session_events()
    addresses.connect_mail()
    recovery.connect_mail()


def _register_cli(app):
    app.cli.add_command(auth_cli)
    app.cli.add_command(billing_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(mail_cli)
