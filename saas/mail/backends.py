"""How a message leaves: over SMTP, or printed to the log (``MAIL_BACKEND``).

``send(message)`` returns what the other side answered; a message that could not be handed over
raises ``MailNotSent``, whose text never carries an address.
"""
import logging
import re
import smtplib
import ssl

log = logging.getLogger("saas.mail")

_ADDRESS = re.compile(r"[^\s<>@\"']+@[^\s<>\"']+")


class MailNotSent(Exception):
    """The server refused the message or could not be reached; the job retries."""


def _without_addresses(text):
    return _ADDRESS.sub("<address>", text)


def _describe(error):
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        (code, reply), *_ = error.recipients.values()
        return f"the server refused the recipient: {code} {_without_addresses(reply.decode(errors='replace'))}"
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else str(error.smtp_error)
        return f"{error.__class__.__name__}: {error.smtp_code} {_without_addresses(reply)}"
    return _without_addresses(f"{error.__class__.__name__}: {error}")


class _Replies:
    """Keeps the server's answer to DATA, which smtplib's ``send_message`` discards."""

    last_reply = None

    def data(self, msg):
        self.last_reply = super().data(msg)
        return self.last_reply


class _SMTP(_Replies, smtplib.SMTP):
    pass


class _SMTPOverTLS(_Replies, smtplib.SMTP_SSL):
    pass


class SmtpBackend:
    """smtplib against SMTP_HOST: implicit TLS with SMTP_SSL, else STARTTLS unless SMTP_STARTTLS
    is false (required when true: a server that does not offer it gets nothing, least of all a
    password), then SMTP_USERNAME/SMTP_PASSWORD if set."""

    def __init__(self, config):
        self.host, self.port = config["SMTP_HOST"], config["SMTP_PORT"]
        self.username, self.password = config["SMTP_USERNAME"], config["SMTP_PASSWORD"]
        self.starttls, self.implicit_tls = config["SMTP_STARTTLS"], config["SMTP_SSL"]
        self.timeout = config["SMTP_TIMEOUT"]

    def send(self, message):
        try:
            with self._connect() as smtp:
                smtp.send_message(message)
                code, reply = smtp.last_reply
                return f"{code} {reply.decode(errors='replace')}"
        except (smtplib.SMTPException, OSError) as error:
            raise MailNotSent(_describe(error)) from None

    def _connect(self):
        context = ssl.create_default_context()
        if self.implicit_tls:
            smtp = _SMTPOverTLS(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = _SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if not self.implicit_tls and self.starttls:
                if not smtp.has_extn("starttls"):
                    raise MailNotSent(
                        f"{self.host}:{self.port} does not offer STARTTLS; set SMTP_STARTTLS=false only for a "
                        "server on a trusted network (a local Mailpit), or SMTP_SSL=true for implicit TLS"
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            smtp.close()
            raise
        return smtp


class ConsoleBackend:
    """Nothing leaves: the message, links included, is written to the log (``make run``)."""

    def __init__(self, config):
        pass

    def send(self, message):
        text = message.get_body(("plain",)).get_content()
        log.info(
            "mail (console backend, not sent): %s", message["Subject"],
            extra={"mail": {"to": message["To"], "subject": message["Subject"], "text": text}},
        )
        return "written to the log (MAIL_BACKEND=console)"


BACKENDS = {"smtp": SmtpBackend, "console": ConsoleBackend}


def backend_for(config):
    return BACKENDS[config["MAIL_BACKEND"]](config)
