"""``flask auth ...``: session housekeeping."""
from datetime import datetime, timedelta, timezone

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from saas.auth.models import AuthSession
from saas.extensions import db

auth_cli = AppGroup("auth", help="Session housekeeping.")


@auth_cli.command("prune-sessions")
@click.option("--keep-days", default=30, show_default=True, help="Keep ended sessions this long (for audits).")
def prune_sessions(keep_days):
    """Delete sessions that expired or were revoked more than --keep-days ago (safe to cron)."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=keep_days)
    deleted = db.session.execute(
        sa.delete(AuthSession).where(sa.or_(AuthSession.expires_at < cutoff, AuthSession.revoked_at < cutoff))
    ).rowcount
    db.session.commit()
    click.echo(f"deleted {deleted} sessions")
