"""``flask users ...``: account administration."""
import sys

import click
import marshmallow as ma
from email_validator import EmailNotValidError
from flask import current_app
from flask.cli import AppGroup

from saas.core.emails import normalize_email
from saas.core.errors import InvalidInput
from saas.users import mfa
from saas.users.service import (
    NoSuchUser,
    NotPromotable,
    create_superuser,
    make_superuser,
    set_user_active,
    user_by_email,
)
from saas.web.fields import NewPassword

users_cli = AppGroup("users", help="Account administration.")

# The exit status of create-superuser and ensure-superuser when an existing account was not
# promoted (deactivated, unverified, deleted) and nothing changed: a release's migrate step
# tolerates it (`flask users ensure-superuser || test $? -eq 3`) and fails on anything else.
NOT_PROMOTED = 3


def _user(email):
    try:
        return user_by_email(email)
    except NoSuchUser as error:
        raise click.ClickException(error.message) from None


@users_cli.command("deactivate")
@click.argument("email")
def deactivate(email):
    """Disable an account and end all of its sessions and API keys at once."""
    set_user_active(_user(email), False)
    click.echo(f"deactivated {email}")


@users_cli.command("activate")
@click.argument("email")
def activate(email):
    """Enable a disabled account."""
    set_user_active(_user(email), True)
    click.echo(f"activated {email}")


@users_cli.command("reset-mfa")
@click.argument("email")
def reset_mfa(email):
    """Turn off the two-factor authentication of an account whose owner lost both the
    authenticator and the recovery codes (check who is asking first). Every session ends, a
    notice is mailed, and the audit log records it."""
    try:
        mfa.reset(_user(email))
    except mfa.MfaNotEnabled as error:
        raise click.ClickException(f"{email}: {error.message}") from None
    click.echo(f"two-factor authentication of {email} is off; every session was ended")


@users_cli.command("reencrypt-secrets")
def reencrypt_secrets():
    """Encrypt every stored secret (two-factor seeds, webhook secrets) again with the first MFA_ENCRYPTION_KEY:
    run it after putting a new key first, then drop the old one."""
    click.echo(f"re-encrypted {mfa.reencrypt_secrets()} secrets with the first MFA_ENCRYPTION_KEY")


@users_cli.command("make-superuser")
@click.argument("email")
def make_superuser_command(email):
    """Grant superuser rights to an account."""
    make_superuser(_user(email))
    click.echo(f"{email} is now a superuser")


@users_cli.command("create-superuser")
@click.argument("email")
@click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of standard input instead of asking for it.",
)
def create_superuser_command(email, password_stdin):
    """Create an active superuser with a verified address (registration's password rules), or make
    the existing account of EMAIL a superuser, its password unchanged, if it is active and its
    address verified (else exit status 3, nothing changed). The password is asked for twice,
    hidden, unless --password-stdin."""
    email = _valid_address(email, "EMAIL")
    if _existing(email) is not None:
        _seed(email, None)
        return
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _seed(email, password)


@users_cli.command("ensure-superuser")
def ensure_superuser_command():
    """Apply FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD: create that superuser if the
    address has no account. An existing account is made a superuser (its password never changes)
    only if it is active and its address verified; otherwise the command says why and exits
    with status 3, promoting nobody. Nothing when FIRST_SUPERUSER_EMAIL is unset. Safe to run on
    every release (the migrate steps tolerate status 3 and fail on any other)."""
    email = current_app.config["FIRST_SUPERUSER_EMAIL"]
    if not email:
        click.echo("FIRST_SUPERUSER_EMAIL is not set: no superuser to ensure")
        return
    email = _valid_address(email, "FIRST_SUPERUSER_EMAIL")
    password = current_app.config["FIRST_SUPERUSER_PASSWORD"]
    if _existing(email) is None and not password:
        raise click.ClickException(f"FIRST_SUPERUSER_PASSWORD is not set: cannot create the account of {email}")
    _seed(email, password)


def _valid_address(email, name):
    try:
        return normalize_email(email)
    except EmailNotValidError as error:
        raise click.ClickException(f"{name} is not a valid email address: {error}") from None


def _existing(email):
    try:
        return user_by_email(email)
    except NoSuchUser:
        return None


def _seed(email, password):
    """Create the superuser (``password`` checked as registration does) or promote the account."""
    try:
        if password is not None:
            NewPassword().deserialize(password)
        user, created = create_superuser(email, password)
    except ma.ValidationError as error:
        raise click.ClickException(f"password refused: {' '.join(error.messages)}") from None
    except InvalidInput as error:  # WeakPassword: common, blank, or the address itself
        reasons = [reason for reasons in (error.field_errors or {}).values() for reason in reasons]
        raise click.ClickException(f"password refused: {' '.join(reasons) or error.message}") from None
    except NotPromotable as error:
        click.echo(f"Error: {email} has an account already. {error.message}", err=True)
        raise click.exceptions.Exit(NOT_PROMOTED) from None
    if created:
        click.echo(f"created superuser {user.email}")
    else:
        click.echo(f"{user.email} has an account already: it is a superuser, its password unchanged")
