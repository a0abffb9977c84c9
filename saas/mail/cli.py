"""``flask mail send-test EMAIL``: is mail set up right?"""
import click
from flask.cli import AppGroup

from saas.mail.backends import MailNotSent
from saas.mail.service import send_now

mail_cli = AppGroup("mail", help="Outgoing mail.")


@mail_cli.command("send-test")
@click.argument("email")
def send_test(email):
    """Send a test message to EMAIL now, through MAIL_BACKEND, and print the server's answer."""
    try:
        reply = send_now(email, "test_message", {})
    except MailNotSent as error:
        raise click.ClickException(f"not sent: {error}") from None
    click.echo(f"sent: {reply}")
