"""Messages rendered from the Jinja2 templates in ``saas/mail/templates``.

A message ``name`` is three files: ``name.subject.txt`` (one line), ``name.txt`` (the plain-text
part) and ``name.html`` (the HTML part, autoescaped, usually extending ``base.html``).
"""
import functools
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@functools.cache
def _environment():
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,  # a missing value is a bug, not an empty space in a mail
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def template_names():
    """Every message that can be sent (each with its three files)."""
    return sorted(path.name.removesuffix(".subject.txt") for path in TEMPLATES.glob("*.subject.txt"))


def render(name, context):
    environment = _environment()
    values = {"app_name": current_app.config["APP_NAME"], "frontend_url": current_app.config["FRONTEND_URL"], **context}
    # One line, whatever the template's whitespace; the HTML part shows it as its title.
    values["subject"] = " ".join(environment.get_template(f"{name}.subject.txt").render(values).split())
    return Rendered(
        subject=values["subject"],
        text=environment.get_template(f"{name}.txt").render(values),
        html=environment.get_template(f"{name}.html").render(values),
    )
