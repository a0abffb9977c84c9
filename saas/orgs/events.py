"""What happens to an organization, for the packages above orgs to react to (blinker signals).

- ``members_changed`` (sender: the organization id): someone joined or left; billing brings a
  per-seat subscription's quantity to the member count.
- ``org_deleting`` (sender: the organization): sent before it is deleted, in the request;
  billing cancels its Stripe subscriptions, and an error it raises stops the deletion.
- ``member_removed`` (sender: the organization id, ``user_id``, ``keep_api_keys``, ``role``,
  ``left``): apikeys revokes the organization's keys the member created, unless told to keep
  them; webhooks records ``member.removed``.
- ``member_joined`` (sender: the organization id, ``user_id``, ``email``, ``role``,
  ``invitation_id``) and ``member_role_changed`` (``user_id``, ``previous_role``, ``role``): webhooks
  records their events.

Each is sent inside the transaction of the change, before it commits (``members_changed`` after).
"""
from blinker import Namespace

_signals = Namespace()

members_changed = _signals.signal("members-changed")
org_deleting = _signals.signal("org-deleting")
member_removed = _signals.signal("member-removed")
member_joined = _signals.signal("member-joined")
member_role_changed = _signals.signal("member-role-changed")
