"""Service information and health checks: /, /health, /health/live, /health/ready."""
from saas.system.routes import blp

__all__ = ["blp"]
