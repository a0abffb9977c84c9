"""``flask users ...``: account administration."""
import click
from flask.cli import AppGroup

from saas.users.service import NoSuchUser, make_superuser, set_user_active, user_by_email

users_cli = AppGroup("users", help="Account administration.")


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


@users_cli.command("make-superuser")
@click.argument("email")
def make_superuser_command(email):
    """Grant superuser rights to an account."""
    make_superuser(_user(email))
    click.echo(f"{email} is now a superuser")
