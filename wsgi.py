"""Entry point for gunicorn (``gunicorn -c gunicorn.conf.py wsgi:app``) and ``flask``."""
from saas import create_app

app = create_app()
