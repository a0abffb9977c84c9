"""What happens to an account, for the packages above users to react to (blinker signals).

Each signal is sent with the user as sender, after the change is committed (but
``user_creating``). Receivers are connected in the reacting package's ``connect_signals()``,
called once by ``create_app``:

- ``user_creating``: sent before the new user is committed, in the same transaction: orgs adds
  the user's personal organisation.
- ``user_registered``: billing queues the Stripe customer's creation; users mails the link
  that verifies the address.
- ``password_changed`` (``keep_session_id``: the session that made the change, or None, as after
  a reset by mail):
  auth ends every other session, apikeys revokes every key (a thief may have minted some).
- ``account_deactivated``: auth ends every session, apikeys revokes every key.
- ``email_changed``: billing gives the Stripe customer the new address (receipts go there).
"""
from blinker import Namespace

_signals = Namespace()

user_creating = _signals.signal("user-creating")
user_registered = _signals.signal("user-registered")
password_changed = _signals.signal("password-changed")
account_deactivated = _signals.signal("account-deactivated")
email_changed = _signals.signal("email-changed")
