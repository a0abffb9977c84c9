"""``flask billing ...``: operational billing commands."""
from datetime import timedelta

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from saas.billing.jobs import sync_all_seats
from saas.billing.models import StripeEvent
from saas.billing.service import create_missing_customers
from saas.billing.subscriptions import sync_all_customers
from saas.billing.webhooks import replay_failed_events
from saas.core.database import transaction
from saas.core.time import utcnow
from saas.extensions import db

billing_cli = AppGroup("billing", help="Stripe billing operations.")


def report_outcome(summary, failures, label):
    """Print each failure and the summary; exit 1 if anything failed, for cron and scripts."""
    for key, error in failures:
        click.echo(f"{label} {key}: {error}", err=True)
    click.echo(f"{summary}, {len(failures)} failed")
    if failures:
        raise SystemExit(1)


@billing_cli.command("ensure-customers")
def ensure_customers():
    """Create the Stripe customer of every user's personal organization that has none."""
    created, failures = create_missing_customers()
    report_outcome(f"created {created} customers", failures, "organization")


@billing_cli.command("replay-events")
def replay_events():
    """Apply again every stored webhook event that failed or was never applied."""
    applied, failures = replay_failed_events()
    report_outcome(f"applied {applied} events", failures, "event")


@billing_cli.command("sync")
def sync():
    """Make every stored subscription match Stripe, for every organization with a Stripe customer."""
    synced, failures = sync_all_customers()
    report_outcome(f"synced {synced} customers", failures, "organization")


@billing_cli.command("sync-seats")
def sync_seats():
    """Bring every per-seat subscription's quantity to its organization's member count."""
    synced, failures = sync_all_seats()
    report_outcome(f"checked {synced} organizations", failures, "organization")


@billing_cli.command("prune-events")
@click.option(
    "--keep-days", default=90, show_default=True, type=click.IntRange(min=1), help="Keep applied events this long."
)
def prune_events(keep_days):
    """Delete applied webhook events older than --keep-days; unapplied ones are always kept."""
    cutoff = utcnow() - timedelta(days=keep_days)
    with transaction():
        deleted = db.session.execute(
            sa.delete(StripeEvent).where(StripeEvent.processed_at.is_not(None), StripeEvent.received_at < cutoff)
        ).rowcount
    click.echo(f"deleted {deleted} events")
