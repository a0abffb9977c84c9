"""``flask users ...``: account administration."""
import click
import sqlalchemy as sa
from flask.cli import AppGroup

from saas.extensions import db
from saas.users.models import User
from saas.users.service import set_user_active

users_cli = AppGroup("users", help="Account administration.")


def _user_by_email(email):
    user = db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    return user


@users_cli.command("deactivate")
@click.argument("email")
def deactivate(email):
    """Disable an account and end all of its sessions at once."""
    set_user_active(_user_by_email(email), False)
    click.echo(f"deactivated {email}")


@users_cli.command("activate")
@click.argument("email")
def activate(email):
    """Enable a disabled account."""
    set_user_active(_user_by_email(email), True)
    click.echo(f"activated {email}")


@users_cli.command("make-superuser")
@click.argument("email")
def make_superuser(email):
    """Grant superuser rights to an account."""
    user = _user_by_email(email)
    user.is_superuser = True
    db.session.commit()
    click.echo(f"{email} is now a superuser")
