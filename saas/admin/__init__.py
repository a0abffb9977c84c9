"""The operators' API: find and manage users and organizations, figures, the admin audit log."""
from saas.admin.routes import blp

__all__ = ["blp"]
