""".env.example lists every variable config.py reads, each once, with its real default, and no
value that takes effect when a newcomer copies it to .env. No server needed."""
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

import config

EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"
ASSIGNMENT = re.compile(r"^(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def settings_classes():
    """Every pydantic-settings group in config.py (subclasses of config.Settings, at any depth)."""
    found, todo = [], [config.Settings]
    while todo:
        for subclass in todo.pop().__subclasses__():
            if subclass.__module__ == config.__name__:
                found.append(subclass)
            todo.append(subclass)
    return found


def settings():
    """{variable: (settings class, field name)} for every alias in config.py."""
    return {
        field.alias: (cls, name)
        for cls in settings_classes()
        for name, field in cls.model_fields.items()
        if field.alias
    }


def example_assignments():
    """(name, value, commented) for each `NAME=value` or `# NAME=value` line of .env.example."""
    found = []
    for line in EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match:
            found.append((match["name"], match["value"], bool(match["comment"])))
    return found


def test_config_has_settings_groups_with_aliases():
    groups = {cls.__name__ for cls in settings_classes()}
    assert {"AppSettings", "StripeSettings", "ServerSettings"} <= groups
    assert len(settings()) >= 60


def test_every_variable_config_reads_is_in_env_example():
    listed = {name for name, _, _ in example_assignments()}
    missing = sorted(set(settings()) - listed)
    assert not missing, (
        f"config.py reads {', '.join(missing)}, which .env.example does not list: add each to "
        ".env.example in its group, as `# NAME=default` (or `# NAME=` when unset) under a one-line comment"
    )


def test_env_example_lists_only_variables_config_reads_each_once():
    names = [name for name, _, _ in example_assignments()]
    assert not sorted(set(names) - set(settings())), "listed in .env.example but not read by config.py"
    assert sorted(name for name in set(names) if names.count(name) > 1) == []


def test_nothing_in_env_example_takes_effect_when_copied():
    # Active lines are only the blanks to fill in (an empty value counts as unset): no placeholder
    # plan, key or URL starts working in a newcomer's .env.
    active = {name: value for name, value, commented in example_assignments() if not commented}
    placeholders = {name: value for name, value in active.items() if value}
    assert not placeholders, (
        f".env.example sets {placeholders}, which would take effect in a copied .env: comment each out "
        "(`# NAME=default`) and give example values in the comment above it"
    )
    assert dotenv_values(EXAMPLE) == active


def test_env_example_builds_a_config():
    values = dotenv_values(EXAMPLE)
    built = config.Config.from_env(values)
    built.validate()
    assert built.flask_config()["APP_ENV"] == "development"
    assert config.ServerSettings.from_env(values).port == 8000


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, value, commented in example_assignments() if commented and value]
)
def test_each_value_shown_commented_is_the_real_default(name, value):
    cls, field = settings()[name]
    assert getattr(cls(**{name: value}), field) == getattr(cls(), field), (
        f".env.example shows {name}={value}, which is not config.py's default"
    )
