"""Service information and health checks: /, /health, /health/live, /health/ready."""
from saas.system.routes import blp, fixed_answers

__all__ = ["blp", "fixed_answers"]
