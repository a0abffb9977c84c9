"""Organizations and memberships: creating, renaming, deleting, roles, leaving.

The gate has already checked that the caller belongs to the organization and that their role
has the permission the endpoint names; the rules here are the ones that depend on whom an
action is about: only an owner grants, removes or demotes an owner, and the last owner can
never be demoted, removed or leave (checked under a lock on the organization's row, so two
owners demoting each other at once cannot both succeed).
"""
import re
import secrets
import unicodedata

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from saas.core.database import atomic, loaded, savepoint
from saas.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from saas.core.ids import MAX_ID, parse_id
from saas.core.permissions import Permission
from saas.extensions import db
from saas.orgs import audit, events
from saas.orgs.models import MEMBER, OWNER, Membership, Organization
from saas.orgs.roles import can
from saas.users import events as user_events
from saas.users.models import User
from saas.web.blueprint import SSO_METHOD

SLUG_LENGTH = 60


class NoSuchOrganization(NotFound):
    message = "No such organization."


class NoSuchMember(NotFound):
    message = "No such member."


class PersonalOrganization(Conflict):
    message = "A personal organization cannot be deleted, left or joined."


class LastOwner(Conflict):
    message = "An organization keeps at least one owner: make someone else owner first."


class OwnersOnly(Forbidden):
    message = "Only an owner can grant, change or remove the owner role."


class RoleNotPermitted(Forbidden):
    def __init__(self, role, permission):
        super().__init__(
            f"Your role in this organization ({role}) does not allow this.",
            errors={"permission": [permission], "role": [role]},
        )


class ApiKeyOfAnotherOrganization(Forbidden):
    message = "This API key belongs to another organization than the one X-Org-Id names."


class KeysOrganizationDeleted(Unauthenticated):
    message = "The organization this API key belonged to was deleted."


PERSONAL_SLUG_PREFIX = "personal-"


def slugify(name):
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:SLUG_LENGTH] or "org"


def _unique_slug(name):
    base = slugify(name)
    if base.startswith(PERSONAL_SLUG_PREFIX):  # personal organizations' slugs are taken by user id
        base = f"team-{base}"[:SLUG_LENGTH]
    slug = base
    while db.session.scalar(sa.select(Organization.id).where(Organization.slug == slug)) is not None:
        slug = f"{base[:SLUG_LENGTH - 7]}-{secrets.token_hex(3)}"
    return slug


def add_personal_org(user):
    """The user's personal organization, owned by them; added to the session of their creation."""
    org = Organization(
        name=user.full_name or user.email.split("@")[0], slug=f"{PERSONAL_SLUG_PREFIX}{user.id}", personal=True,
        personal_owner_id=user.id,
    )
    db.session.add(org)
    db.session.flush()
    db.session.add(Membership(org_id=org.id, user_id=user.id, role=OWNER))
    return org


# The gate loads a caller's personal organization in the query that finds the caller: the
# user's row joined with this alias, whose columns come back as ``porg_<column>``.
_PERSONAL = Organization.__table__.alias("personal_org")
# (the organization's attribute, the row's label), worked out once for the gate's every request.
_PERSONAL_FIELDS = tuple((column.name, f"porg_{column.name}") for column in _PERSONAL.columns)


def personal_org_columns():
    return [column.label(f"porg_{column.name}") for column in _PERSONAL.columns]


def personal_org_join():
    """The outer join to add to a query selecting from ``users``."""
    return _PERSONAL, _PERSONAL.c.personal_owner_id == User.id


def attach_personal_org(user, row):
    """Give ``user`` (read by the gate) its personal organization from ``row`` (a query with
    ``personal_org_columns``), as if loaded: ``user.personal_org`` and the organization's
    ``personal_owner`` then need no query, nor a session (the request may not have one yet:
    ``saas.core.database.attached``)."""
    if row["porg_id"] is not None:
        org = loaded(Organization, {name: row[label] for name, label in _PERSONAL_FIELDS})
    else:
        org = ensure_personal_org(user)
    set_committed_value(user, "personal_org", org)
    set_committed_value(org, "personal_owner", user)
    return org


@atomic
def ensure_personal_org(user):
    """The user's personal organization, created now if they have none: during a rollout the
    previous release still registers users without one (expand/contract). It takes the billing
    columns the previous release kept on the user's row."""
    org = personal_org_of(user)
    if org is not None:
        return org
    try:
        with savepoint():
            org = add_personal_org(user)
            org.stripe_customer_id, org.stripe_customers_deleted = user.stripe_customer_id, user.stripe_customers_deleted
            org.plan, org.plan_past_due_since = user.plan, user.plan_past_due_since
            db.session.flush()
    except IntegrityError:  # a concurrent request of the same user created it
        org = personal_org_of(user)
    return org


def personal_org_of(user):
    return db.session.scalar(sa.select(Organization).where(Organization.personal_owner_id == user.id))


@atomic
def create_org(user, name):
    """A team organization with ``user`` as its owner; returns (org, role)."""
    for _ in range(3):
        org = Organization(name=name, slug=_unique_slug(name), personal=False)
        try:
            with savepoint():
                db.session.add(org)
                db.session.flush()
        except IntegrityError:  # another request took the slug meanwhile
            continue
        db.session.add(Membership(org_id=org.id, user_id=user.id, role=OWNER))
        audit.record(org.id, "org.created", target=f"org:{org.id}", details={"name": name})
        return org, OWNER
    raise Conflict("Could not choose a unique slug; try again.")


def orgs_of(user):
    """``[(org, role), ...]`` of the user, the personal organization first, then by age."""
    return db.session.execute(
        sa.select(Organization, Membership.role)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.user_id == user.id)
        .order_by(Organization.personal.desc(), Organization.created_at, Organization.id)
    ).all()


def membership(user_id, org_id):
    """``(org, role)`` when the user belongs to the organization, else None."""
    return db.session.execute(
        sa.select(Organization, Membership.role)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Organization.id == org_id, Membership.user_id == user_id)
    ).one_or_none()


def member_access(principal, org_id):
    """For the gate: the organization of the path and the caller's role in it; 404 for anyone
    who is not a member, whether or not it exists (or could: an id past every id)."""
    found = membership(principal.user.id, org_id) if org_id <= MAX_ID else None
    if found is None:
        raise NoSuchOrganization()
    return found.Organization, found.role


def acting_access(principal, requested_org_id):
    """For the gate: the organization a call acts for (its quota, its plan). An organization's
    API key acts for it; a login session for the organization X-Org-Id names, if the caller is
    a member, else for the personal organization."""
    org_id = _org_id(requested_org_id)
    if principal.api_key_id is not None:
        key_org_id = principal.api_key_org_id or principal.user.personal_org.id
        if org_id is not None and org_id != key_org_id:
            raise ApiKeyOfAnotherOrganization()
        org = db.session.get(Organization, key_org_id)
        if org is None:  # deleted since the gate found the key
            raise KeysOrganizationDeleted()
        return org, MEMBER  # a key acts with a member's permissions
    if org_id is None:
        org = principal.user.personal_org
        return org, OWNER
    return member_access(principal, org_id)


def _org_id(raw):
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise InvalidInput(
            "X-Org-Id must be the id of an organization.",
            errors={"headers": {"X-Org-Id": ["Not a valid organization id."]}},
        )
    org_id = parse_id(raw)
    if org_id is None:  # a number, but past every id: no such organization, as for a non-member
        raise NoSuchOrganization()
    return org_id


def check_permission(role, permission):
    if not can(role, permission):
        raise RoleNotPermitted(role, permission)


class TwoFactorRequiredByOrganization(Forbidden):
    message = (
        "This organization requires two-factor authentication: turn it on "
        "(POST /api/v1/auth/mfa/totp/setup), or leave the organization."
    )

    def __init__(self):
        super().__init__(errors={"reason": ["mfa_required_by_org"]})


class OwnerWithoutTwoFactor(Conflict):
    message = "Turn on two-factor authentication for your own account before requiring it of the members."


class OrganizationRequiresTwoFactor(Conflict):
    def __init__(self, orgs):
        names = ", ".join(org.name for org in orgs)
        super().__init__(
            f"{names} requires two-factor authentication of its members: leave it before turning two-factor off.",
            errors={"organizations": [org.id for org in orgs]},
        )


def org_policy(principal, org):
    """For the gate: the organization's own rules about who may act in it. While it requires
    two-factor, a login session without it is refused, but one that came through this
    organization's own single sign-on (its provider enforces its factors; another organization's
    provider says nothing about them); API keys are unaffected."""
    if not org.require_mfa or principal.api_key_id is not None:
        return
    if principal.user.mfa_enabled or (SSO_METHOD in principal.auth_methods and principal.sso_org_id == org.id):
        return
    raise TwoFactorRequiredByOrganization()


def leaving(principal, view_args):
    """Whether a call about a member is the caller leaving: allowed whatever the policy."""
    return view_args.get("user_id") == principal.user_id


@atomic
def update_org(org, actor, changes):
    """Rename the organization (the gate checked the caller), and (owners) require two-factor
    of its members or stop: that changes who may act in it, so the owner's role is read again
    under the organization's lock."""
    if "require_mfa" in changes and changes["require_mfa"] != org.require_mfa:
        locked_role(org.id, actor.id, Permission.ORG_SECURITY)  # 403 but for an owner, now
        if changes["require_mfa"] and not actor.mfa_enabled:
            raise OwnerWithoutTwoFactor()
        audit.record(org.id, "org.mfa_required" if changes["require_mfa"] else "org.mfa_not_required",
                     target=f"org:{org.id}")
        org.require_mfa = changes["require_mfa"]
    if "name" in changes and org.name != changes["name"]:
        audit.record(org.id, "org.renamed", target=f"org:{org.id}", details={"from": org.name, "to": changes["name"]})
        org.name = changes["name"]
    return org


@atomic
def delete_org(org, actor_user_id):
    """Delete a team organization: billing cancels its subscriptions first (and stops the
    deletion if Stripe cannot be reached). The audit log keeps its events."""
    if org.personal:
        raise PersonalOrganization()
    locked_role(org.id, actor_user_id, Permission.ORG_DELETE)
    events.org_deleting.send(org)
    audit.record(org.id, "org.deleted", target=f"org:{org.id}", details={"name": org.name, "slug": org.slug})
    db.session.flush()
    db.session.delete(org)


def members(org):
    return db.session.scalars(
        sa.select(Membership).where(Membership.org_id == org.id).order_by(Membership.joined_at, Membership.id)
    ).all()


def lock_org(org_id):
    """The organization's row, locked until the transaction ends (None if there is no such
    one): role changes, removals, checkouts and subscription writes are serialised per
    organization."""
    return db.session.execute(
        sa.select(Organization).where(Organization.id == org_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _target(org_id, user_id):
    target = db.session.scalar(
        sa.select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )
    if target is None:
        raise NoSuchMember()
    return target


def member_count(org_id):
    return db.session.scalar(sa.select(sa.func.count()).select_from(Membership).where(Membership.org_id == org_id))


def owner_count(org_id):
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Membership).where(Membership.org_id == org_id, Membership.role == OWNER)
    )


def locked_role(org_id, user_id, permission):
    """The one helper of every command that changes members, roles or the organization's
    security: lock the organization's row (until the use case ends), then read the actor's role
    again, because the gate read it before the lock and a concurrent change may have taken it
    away. Refuses as the gate would (the use case rolls back, which releases the lock)."""
    lock_org(org_id)
    role = role_of(user_id, org_id)
    if role is None:
        raise NoSuchOrganization()
    if not can(role, permission):
        raise RoleNotPermitted(role, permission)
    return role


def role_of(user_id, org_id):
    """The user's role in the organization, or None."""
    return db.session.scalar(
        sa.select(Membership.role).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )


@atomic
def change_role(org, actor_user_id, user_id, new_role):
    """Give a member another role. Owners only grant, change or remove ``owner``; the last
    owner keeps it."""
    actor_role = locked_role(org.id, actor_user_id, Permission.MEMBERS_ROLE)
    target = _target(org.id, user_id)
    if OWNER in (target.role, new_role) and actor_role != OWNER:
        raise OwnersOnly()
    if target.role == OWNER and new_role != OWNER and owner_count(org.id) <= 1:
        raise LastOwner()
    if target.role != new_role:
        audit.record(org.id, "member.role_changed", target=f"user:{user_id}",
                     details={"from": target.role, "to": new_role})
        events.member_role_changed.send(org.id, user_id=user_id, previous_role=target.role, role=new_role)
        target.role = new_role
    return target


@atomic
def remove_member(org, actor_user_id, user_id, *, keep_api_keys=False):
    """Remove a member, or leave (``user_id`` is the actor's own). Their access ends at once;
    the keys they created for the organization are revoked unless the admin removing them
    keeps them (``keep_api_keys``; never for someone leaving, who cannot vouch for their own)."""
    if org.personal:
        raise PersonalOrganization()
    leaving = user_id == actor_user_id
    keep_api_keys = keep_api_keys and not leaving
    actor_role = locked_role(org.id, actor_user_id, Permission.ORG_READ if leaving else Permission.MEMBERS_REMOVE)
    target = _target(org.id, user_id)
    if target.role == OWNER and not leaving and actor_role != OWNER:
        raise OwnersOnly()
    if target.role == OWNER and owner_count(org.id) <= 1:
        raise LastOwner()
    db.session.delete(target)
    audit.record(org.id, "member.left" if leaving else "member.removed", target=f"user:{user_id}",
                 details={"role": target.role, "api_keys_kept": bool(keep_api_keys)})
    events.member_removed.send(org.id, user_id=user_id, keep_api_keys=keep_api_keys, role=target.role, left=leaving)
    events.members_changed.send(org.id)


def connect_signals():
    """Every new user gets their personal organization in the transaction that creates them;
    two-factor cannot be turned off while an organization of theirs requires it."""
    user_events.user_creating.connect(_add_personal_org, weak=False)
    user_events.mfa_disabling.connect(_refuse_if_an_org_requires_two_factor, weak=False)


def _refuse_if_an_org_requires_two_factor(user, **_):
    requiring = db.session.scalars(
        sa.select(Organization).join(Membership, Membership.org_id == Organization.id)
        .where(Membership.user_id == user.id, Organization.require_mfa.is_(True)).order_by(Organization.id)
    ).all()
    if requiring:
        raise OrganizationRequiresTwoFactor(requiring)


def _add_personal_org(user, **_):
    add_personal_org(user)
