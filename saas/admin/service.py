"""What operators (superusers) can see and do: find users and organizations, look at one, disable
or promote an account, end its sessions; figures; the admin audit log.

Every change writes an audit event (``admin.*``, ``org_id`` null) in the transaction of the
change. The gate admits only a superuser's login session; the rules here are the ones about
whom an action is about: a superuser never deactivates or demotes themselves (409), and two
superusers acting on each other at once are serialised, so they cannot both lose the right.
"""
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from saas.apikeys.models import ApiKey
from saas.auth.models import AuthSession
from saas.auth import service as auth_service
from saas.billing.entitlements import subscription_summary
from saas.billing.models import Subscription
from saas.core.database import atomic, page_of
from saas.core.errors import Conflict, Forbidden
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs import audit
from saas.orgs.models import AuditEvent, Organization
from saas.orgs.service import NoSuchOrganization, ensure_personal_org, members, orgs_of
from saas.usage.service import month_totals, quota_status
from saas.users.models import User
from saas.users.service import NoSuchUser, set_user_active

ADMIN_ACTION_PREFIX = "admin."
# "Active" users: a login, a session refresh or an API key call within this many days.
ACTIVE_DAYS = 30
USER_FLAGS = ("is_active", "is_superuser", "email_verified")


class CannotLockYourselfOut(Conflict):
    message = "A superuser cannot deactivate or demote themselves: ask another superuser."


class DeletedAccount(Conflict):
    message = "This account was deleted by its owner: it stays as it is, for accounting."


class NoLongerSuperuser(Forbidden):
    message = "Your superuser rights were withdrawn meanwhile."


def _containing(text):
    """A case-insensitive LIKE pattern matching ``text`` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matching(query, text, *columns):
    if not text:
        return query
    pattern = _containing(text)
    return query.where(sa.or_(*(column.ilike(pattern, escape="\\") for column in columns)))


# --- users ------------------------------------------------------------------------------------


def users_page(text, pagination):
    """Users whose email or full name contains ``text`` (all without), newest first."""
    query = _matching(sa.select(User), text, User.email, User.full_name)
    query = query.options(selectinload(User.personal_org)).order_by(User.created_at.desc(), User.id.desc())
    return page_of(query, pagination)


def get_user(user_id):
    user = db.session.get(User, user_id)
    if user is None:
        raise NoSuchUser()
    return user


def _count(query):
    return db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))


def open_sessions(user_id):
    """The user's sessions that are neither revoked nor expired."""
    return _count(
        sa.select(AuthSession.id).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None), AuthSession.expires_at > utcnow()
        )
    )


def user_details(user_id):
    """The user with their organizations, open sessions, API keys, and their personal
    organization's subscription and usage this month."""
    user = get_user(user_id)
    personal = ensure_personal_org(user)  # adopts an account the previous release registered
    user.organizations = [
        {"id": org.id, "name": org.name, "slug": org.slug, "personal": org.personal, "role": role}
        for org, role in orgs_of(user)
    ]
    user.open_sessions = open_sessions(user.id)
    user.api_keys = _count(sa.select(ApiKey.id).where(ApiKey.user_id == user.id))
    user.subscription = subscription_summary(personal)
    user.usage = quota_status(personal)
    return user


def _lock_users(*user_ids):
    """The users' rows, locked until the transaction ends, always in id order (no deadlock)."""
    rows = db.session.scalars(
        sa.select(User).where(User.id.in_(user_ids)).order_by(User.id).with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    return {user.id: user for user in rows}


@atomic
def update_user(actor_id, user_id, changes):
    """Set ``is_active``, ``is_superuser`` and ``email_verified`` (those given). Deactivating
    ends every session and API key of the user at once. Only what changes is written and audited.
    A refusal rolls back, which releases the locks."""
    locked = _lock_users(actor_id, user_id)
    actor, user = locked.get(actor_id), locked.get(user_id)
    if user is None:
        raise NoSuchUser()
    if actor is None or not (actor.is_active and actor.is_superuser):
        raise NoLongerSuperuser()
    if user.id == actor.id and False in (changes.get("is_active"), changes.get("is_superuser")):
        raise CannotLockYourselfOut()
    if user.deleted_at is not None:
        raise DeletedAccount()
    changed = {name: {"from": getattr(user, name), "to": value}
               for name, value in changes.items() if name in USER_FLAGS and getattr(user, name) != value}
    if not changed:
        return user
    user.is_superuser = changes.get("is_superuser", user.is_superuser)
    user.email_verified = changes.get("email_verified", user.email_verified)
    audit.record(None, "admin.user_updated", target=f"user:{user.id}", details={"email": user.email, **changed})
    if "is_active" in changed:
        set_user_active(user, changes["is_active"])  # deactivation ends sessions and keys
    return user


@atomic
def log_out_everywhere(user_id):
    """End every session of the user (their API keys keep working) and void the links mailed
    for the account, and record it."""
    user = get_user(user_id)
    audit.record(None, "admin.user_logged_out", target=f"user:{user.id}",
                 details={"email": user.email, "sessions_ended": open_sessions(user.id)})
    auth_service.log_out_everywhere(user, reason="admin-logout-all")


# --- organizations ----------------------------------------------------------------------------


def orgs_page(text, pagination):
    """Organizations whose name or slug contains ``text`` (all without), newest first."""
    query = _matching(sa.select(Organization), text, Organization.name, Organization.slug)
    return page_of(query.order_by(Organization.created_at.desc(), Organization.id.desc()), pagination)


def org_details(org_id):
    """The organization with its members, subscription and usage this month."""
    org = db.session.get(Organization, org_id)
    if org is None:
        raise NoSuchOrganization()
    org.members = members(org)
    org.subscription = subscription_summary(org)
    org.usage = quota_status(org)
    return org


# --- figures and the audit log ----------------------------------------------------------------


def stats():
    """Users (total, active in the last ACTIVE_DAYS days, deactivated, superusers), every
    subscription by plan and status, and the AI tokens of this month."""
    since = utcnow() - timedelta(days=ACTIVE_DAYS)
    active = sa.union(
        sa.select(AuthSession.user_id).where(
            sa.or_(AuthSession.created_at >= since, AuthSession.last_refreshed_at >= since)
        ),
        sa.select(ApiKey.user_id).where(ApiKey.last_used_at >= since),
    )
    users = db.session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(User.is_active.is_(False)),
            sa.func.count().filter(User.is_superuser.is_(True)),
        ).select_from(User)
    ).one()
    subscriptions = db.session.execute(
        sa.select(Subscription.plan, Subscription.status, sa.func.count().label("count"))
        .group_by(Subscription.plan, Subscription.status)
        .order_by(Subscription.plan, Subscription.status)
    ).all()
    return {
        "users": {"total": users[0], "active_last_30_days": _count(active), "deactivated": users[1],
                  "superusers": users[2]},
        "subscriptions": [row._asdict() for row in subscriptions],
        "ai_tokens": month_totals(),
    }


def audit_page(pagination):
    """The operators' actions (``admin.*``; they belong to no organization), newest first."""
    query = sa.select(AuditEvent).where(
        AuditEvent.org_id.is_(None), AuditEvent.action.startswith(ADMIN_ACTION_PREFIX, autoescape=True)
    )
    return page_of(audit.newest_first(query), pagination)
