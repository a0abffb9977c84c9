"""``flask billing ...``: operational billing commands."""
from datetime import datetime, timedelta, timezone

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from saas.billing.models import StripeEvent
from saas.extensions import db
from saas.users.models import User

billing_cli = AppGroup("billing", help="Stripe billing operations.")


def _report(summary, failures, label):
    """Print each failure and the summary; exit 1 if anything failed, for cron and scripts."""
    for key, error in failures:
        click.echo(f"{label} {key}: {error}", err=True)
    click.echo(f"{summary}, {len(failures)} failed")
    if failures:
        raise SystemExit(1)


@billing_cli.command("ensure-customers")
def ensure_customers():
    """Create the Stripe customer of every user who has none (after a Redis or Stripe outage)."""
    from saas.billing.service import ensure_customer

    users = db.session.scalars(sa.select(User).where(User.stripe_customer_id.is_(None))).all()
    created, failures = 0, []
    for user in users:
        try:
            ensure_customer(user)
            created += 1
        except Exception as error:  # keep going; report the count at the end
            failures.append((user.id, error))
            db.session.rollback()
    _report(f"created {created} customers", failures, "user")


@billing_cli.command("replay-events")
def replay_events():
    """Apply again every stored webhook event that failed or was never applied."""
    from saas.billing.webhooks import replay_failed_events

    applied, failures = replay_failed_events()
    _report(f"applied {applied} events", failures, "event")


@billing_cli.command("sync")
def sync():
    """Make every stored subscription match Stripe, for every user with a Stripe customer."""
    from saas.billing.subscriptions import sync_all_customers

    synced, failures = sync_all_customers()
    _report(f"synced {synced} customers", failures, "user")


@billing_cli.command("report-usage")
def report_usage():
    """Send Stripe every token usage record not reported yet (after a Redis or Stripe outage)."""
    from saas.usage.jobs import report_pending_usage

    if not current_app.config["STRIPE_METER_EVENT_NAME"]:
        raise click.ClickException("STRIPE_METER_EVENT_NAME is not set: usage is not billed through Stripe.")
    reported, failures = report_pending_usage()
    _report(f"reported {reported} usage records", failures, "usage record")


@billing_cli.command("prune-events")
@click.option("--keep-days", default=90, show_default=True, help="Keep applied events this long.")
def prune_events(keep_days):
    """Delete applied webhook events older than --keep-days; unapplied ones are always kept."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=keep_days)
    deleted = db.session.execute(
        sa.delete(StripeEvent).where(StripeEvent.processed_at.is_not(None), StripeEvent.received_at < cutoff)
    ).rowcount
    db.session.commit()
    click.echo(f"deleted {deleted} events")
