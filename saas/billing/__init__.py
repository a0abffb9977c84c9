"""Stripe billing: customers, checkout, portal, webhooks, subscriptions, plans and seats."""
from saas.billing.routes import blp, org_billing_blp

__all__ = ["blp", "org_billing_blp"]
