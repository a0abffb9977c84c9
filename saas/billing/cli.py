"""``flask billing ...``: operational billing commands."""
import click
import sqlalchemy as sa
from flask.cli import AppGroup

from saas.extensions import db
from saas.users.models import User

billing_cli = AppGroup("billing", help="Stripe billing operations.")


@billing_cli.command("ensure-customers")
def ensure_customers():
    """Create the Stripe customer of every user who has none (after a Redis or Stripe outage)."""
    from saas.billing.service import ensure_customer

    users = db.session.scalars(sa.select(User).where(User.stripe_customer_id.is_(None))).all()
    created = failed = 0
    for user in users:
        try:
            ensure_customer(user)
            created += 1
        except Exception as error:  # keep going; report the count at the end
            failed += 1
            click.echo(f"user {user.id}: {error}", err=True)
    click.echo(f"created {created} customers, {failed} failed")
    if failed:
        raise SystemExit(1)


@billing_cli.command("replay-events")
def replay_events():
    """Apply again every stored webhook event that failed or was never applied."""
    from saas.billing.webhooks import replay_failed_events

    click.echo(f"applied {replay_failed_events()} events")
