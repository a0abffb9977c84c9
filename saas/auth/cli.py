"""``flask auth ...``: session housekeeping."""
from datetime import timedelta

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from saas.auth.limits import unlock_account
from saas.auth.models import AuthSession
from saas.core.database import transaction
from saas.core.time import utcnow
from saas.extensions import db

auth_cli = AppGroup("auth", help="Session housekeeping.")


@auth_cli.command("prune-sessions")
@click.option(
    "--keep-days", default=30, show_default=True, type=click.IntRange(min=1),
    help="Keep ended sessions this long (for audits); at least 1, so a live session is never touched.",
)
def prune_sessions(keep_days):
    """Delete sessions that expired or were revoked more than --keep-days ago (safe to cron)."""
    cutoff = utcnow() - timedelta(days=keep_days)
    with transaction():
        deleted = db.session.execute(
            sa.delete(AuthSession).where(sa.or_(AuthSession.expires_at < cutoff, AuthSession.revoked_at < cutoff))
        ).rowcount
    click.echo(f"deleted {deleted} sessions")


@auth_cli.command("unlock")
@click.argument("email")
def unlock(email):
    """Clear an account's failed-login throttle, so its owner can try again at once."""
    unlock_account(email)
    click.echo(f"cleared the failed-login count of {email}")
