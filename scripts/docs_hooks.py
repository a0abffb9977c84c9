"""The documentation site's generated parts: an MkDocs hook (``hooks:`` in mkdocs.yml).

A page asks for a part made from the code with a line of its own, ``<!-- generated: NAME -->``;
the build replaces it with the part, so the site cannot drift from the code and nobody edits a
copy. The parts (``GENERATED``):

- ``settings``: every setting ``config.py`` reads, group by group, with its variable, its default
  and its description (each field's ``description``; ``shown_default`` where the field's own
  default is computed);
- ``permissions``: which role has which permission, from ``saas/orgs/roles.py``, with what each
  allows (``saas/core/permissions.py``) and the operations that need it (their ``x-permission``).

A part the hook does not know, or a setting without a description, fails the build (and so
``make docs`` and ``make test``). A new part: a function returning markdown, added to GENERATED.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # MkDocs loads a hook with only the hook's own folder on sys.path

import config  # noqa: E402  (imported now: MkDocs restores sys.path once the hook is loaded)
from saas.core.permissions import Permission  # noqa: E402
from saas.orgs import roles  # noqa: E402

MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.M)


class GenerationError(ValueError):
    """A generated part cannot be made: a setting without a description, an unknown part."""


def _cell(text):
    return str(text).replace("|", "\\|")


def shown_default(field):
    """The default of a settings field as the page shows it (markdown)."""
    extra = field.json_schema_extra or {}
    if "shown_default" in extra:
        return extra["shown_default"]
    if field.default_factory is not None:
        raise GenerationError(f"{field.alias} has a computed default: give it json_schema_extra=shown_default(...)")
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, dict):
        value = ",".join(f"{name}:{item}" for name, item in value.items())
    elif isinstance(value, (list, tuple)):
        value = ",".join(value)
    return f"`{value}`" if value != "" else "empty"


def settings_groups():
    """Every group of settings in config.py, in the order the file defines them."""
    return config.Settings.__subclasses__()


def group_title(group):
    """(title, introduction) from a group's docstring: its first line, then the rest."""
    title, _, introduction = (group.__doc__ or "").strip().partition("\n")
    if not title:
        raise GenerationError(f"config.{group.__name__} has no docstring: its first line is the page's heading")
    return title.strip(), " ".join(introduction.split())


def settings_reference(groups=None):
    """The configuration page's tables: one per group of config.py (or of ``groups``)."""
    sections = []
    for group in groups or settings_groups():
        title, introduction = group_title(group)
        rows = ["| variable | default | description |", "|---|---|---|"]
        for name, field in group.model_fields.items():
            if not field.alias:
                raise GenerationError(f"config.{group.__name__}.{name} has no alias (its variable's name)")
            if not (field.description or "").strip():
                raise GenerationError(
                    f"config.{group.__name__}.{name} ({field.alias}) has no description: add "
                    "`description=\"...\"` to its Field (it is the documentation's configuration page)"
                )
            rows.append(f"| `{field.alias}` | {_cell(shown_default(field))} | {_cell(field.description)} |")
        sections.append("\n\n".join(part for part in (f"## {title}", introduction, "\n".join(rows)) if part))
    return "\n\n".join(sections)


def _operations_by_permission():
    """``{permission: ["METHOD /path", ...]}`` from the OpenAPI document the client is made from
    (clients/typescript/openapi.json, which a test keeps equal to the app's): each operation's
    ``x-permission``, set by the gate."""
    document = json.loads((ROOT / "clients" / "typescript" / "openapi.json").read_text())
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "x-permission" in operation:
                found.setdefault(operation["x-permission"], []).append(f"{method.upper()} {path}")
    return found


def permissions_reference():
    """Which role has which permission (saas/orgs/roles.py, saas/core/permissions.py), what it
    allows, and the operations that need it: roles from the fewest permissions to the most,
    permissions by the lowest role that has them, then in the order they are declared."""
    ordered_roles = sorted(roles.PERMISSIONS, key=lambda role: len(roles.PERMISSIONS[role]))
    declared = list(Permission)
    holders = {
        permission: [role for role in ordered_roles if permission in roles.PERMISSIONS[role]]
        for permission in declared
    }
    operations = _operations_by_permission()
    ordered = sorted(declared, key=lambda permission: (-len(holders[permission]), declared.index(permission)))
    rows = [
        "| permission | " + " | ".join(f"`{role}`" for role in ordered_roles) + " | what it allows | operations |",
        "|---|" + "---|" * len(ordered_roles) + "---|---|",
    ]
    for permission in ordered:
        marks = ["yes" if role in holders[permission] else "-" for role in ordered_roles]
        needed_by = "<br>".join(f"`{operation}`" for operation in operations.get(permission.value, [])) or "(services)"
        rows.append(f"| `{permission.value}` | " + " | ".join(marks)
                    + f" | {_cell(permission.description)} | {needed_by} |")
    return "\n".join(rows)


GENERATED = {"settings": settings_reference, "permissions": permissions_reference}


def render(markdown, where="the page"):
    """``markdown`` with each ``<!-- generated: NAME -->`` line replaced by its part."""

    def part(match):
        name = match[1]
        if name not in GENERATED:
            raise GenerationError(f"{where} asks for a generated part {name!r}; known: {', '.join(GENERATED)}")
        return GENERATED[name]()

    return MARKER.sub(part, markdown)


def on_page_markdown(markdown, page, config, files):
    from mkdocs.exceptions import PluginError

    try:
        return render(markdown, page.file.src_uri)
    except GenerationError as error:
        raise PluginError(str(error)) from None
