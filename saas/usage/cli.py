"""``flask billing report-usage``: the usage command lives with usage, in the billing group."""
import click
from flask import current_app

from saas.billing.cli import billing_cli, report_outcome
from saas.usage.jobs import report_pending_usage


@billing_cli.command("report-usage")
def report_usage():
    """Send Stripe every token usage record not reported yet (after a Redis or Stripe outage)."""
    if not current_app.config["STRIPE_METER_EVENT_NAME"]:
        raise click.ClickException("STRIPE_METER_EVENT_NAME is not set: usage is not billed through Stripe.")
    reported, failures = report_pending_usage()
    report_outcome(f"reported {reported} usage records", failures, "usage record")
