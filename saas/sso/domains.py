"""The domains an organization claims, and the DNS proof that it controls them.

A claim gets a random TXT value to publish at ``_saas-challenge.<domain>``; verifying looks it
up (``saas.core.resolver``, DNS_NAMESERVERS) and marks the domain verified when the record holds
it. A domain is verified by one organization at a time (a unique index over verified domains,
so two organizations verifying at once cannot both win); any number may hold a pending claim,
because a claim proves nothing and must not block the domain's real owner. A verified domain
stays verified until its organization removes it (the record may then be taken down).

Public mail domains (``public-mail-domains.txt``, shipped with the project) are refused at once:
no organization can prove it controls gmail.com, and an owner trying should be told why.
"""
import functools
import secrets
from pathlib import Path

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError

from saas.core.database import atomic, savepoint
from saas.core.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from saas.core.permissions import Permission
from saas.core.resolver import NotResolved, txt_records
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs import audit
from saas.orgs.service import PersonalOrganization, locked_role
from saas.sso import policy
from saas.sso.connection import DNS_SECONDS
from saas.sso.models import OrgDomain

PUBLIC_MAIL_DOMAINS_FILE = Path(__file__).with_name("public-mail-domains.txt")
MAX_DOMAINS = 50


class NoSuchDomain(NotFound):
    message = "No such domain."


class PublicMailDomain(InvalidInput):
    def __init__(self, domain):
        super().__init__(
            f"{domain} is a public mail domain: anyone can have an address there, so no organization can claim it.",
            errors={"domain": ["A public mail domain cannot be claimed."]},
        )


class DomainClaimedAlready(Conflict):
    message = "The organization has claimed this domain already."


class TooManyDomains(Conflict):
    message = f"An organization claims at most {MAX_DOMAINS} domains: remove one first."


class VerifiedElsewhere(Conflict):
    def __init__(self):
        super().__init__(
            "Another organization has verified this domain: it must remove it before this one can verify it.",
            errors={"reason": ["domain_verified_by_another_organization"]},
        )


class RecordNotFound(Conflict):
    """The TXT record does not hold the value: says what was looked up and what was found."""

    def __init__(self, domain, found):
        shown = ", ".join(f'"{value}"' for value in found[:10]) or "no TXT record"
        super().__init__(
            f"The TXT record at {domain.txt_name} does not hold {domain.txt_value}: DNS answered {shown}. "
            "Publish it and try again (DNS changes can take a while to reach every server).",
            errors={"reason": ["txt_record_not_found"], "txt_name": [domain.txt_name], "found": found[:10]},
        )


class DnsUnavailable(ServiceUnavailable):
    def __init__(self, problem):
        super().__init__(f"DNS could not be asked ({problem}): try again shortly.")


@functools.cache
def public_mail_domains():
    lines = PUBLIC_MAIL_DOMAINS_FILE.read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def normalized_domain(raw):
    """``raw`` in the form addresses on it are stored in (``saas.core.emails``: one form whether
    typed in Unicode, punycode or full-width letters, lower case), or InvalidInput."""
    try:
        checked = validate_email(f"postmaster@{raw.strip().rstrip('.')}", check_deliverability=False,
                                 test_environment=True)
    except EmailNotValidError as error:
        raise InvalidInput("Not a domain name.", errors={"domain": [f"Not a valid domain name: {error}"]}) from None
    domain = checked.domain.lower()
    if "." not in domain:
        raise InvalidInput("Not a domain name.", errors={"domain": ["A domain has at least two labels."]})
    if domain in public_mail_domains() or checked.ascii_domain.lower() in public_mail_domains():
        raise PublicMailDomain(domain)
    return domain


def domain_of(address):
    """The domain of a normalised address."""
    return address.rsplit("@", 1)[-1]


def domains_of(org_id):
    return db.session.scalars(
        sa.select(OrgDomain).where(OrgDomain.org_id == org_id).order_by(OrgDomain.created_at, OrgDomain.id)
    ).all()


def verified_domains_of(org_id):
    return db.session.scalars(
        sa.select(OrgDomain.domain).where(OrgDomain.org_id == org_id, OrgDomain.verified_at.is_not(None))
    ).all()


def _domain(org_id, domain_id):
    found = db.session.scalar(sa.select(OrgDomain).where(OrgDomain.id == domain_id, OrgDomain.org_id == org_id))
    if found is None:
        raise NoSuchDomain()
    return found


@atomic
def claim(org, actor_id, raw_domain):
    """A pending claim of the organization to a domain, with its TXT record to publish."""
    if org.personal:
        raise PersonalOrganization()
    domain = normalized_domain(raw_domain)
    locked_role(org.id, actor_id, Permission.SSO_MANAGE)
    held = db.session.scalar(sa.select(sa.func.count()).select_from(OrgDomain).where(OrgDomain.org_id == org.id))
    if held >= MAX_DOMAINS:
        raise TooManyDomains()
    claimed = OrgDomain(org_id=org.id, domain=domain, challenge=secrets.token_urlsafe(24))
    try:
        with savepoint():
            db.session.add(claimed)
            db.session.flush()
    except IntegrityError:
        raise DomainClaimedAlready() from None
    audit.record(org.id, "sso.domain_added", target=f"domain:{claimed.id}", details={"domain": domain})
    return claimed


def verify(org, actor_id, domain_id):
    """Look the claim's TXT record up and, when it holds the value, mark the domain verified.
    DNS is asked before the use case begins, so no lock is held while it answers."""
    claimed = _domain(org.id, domain_id)
    if claimed.verified:
        return claimed
    try:
        found = txt_records(claimed.txt_name, lifetime=DNS_SECONDS)
    except NotResolved as problem:
        raise DnsUnavailable(problem) from None
    if claimed.txt_value not in found:
        raise RecordNotFound(claimed, found)
    return _mark_verified(org.id, actor_id, domain_id, claimed.challenge)


@atomic
def _mark_verified(org_id, actor_id, domain_id, challenge):
    locked_role(org_id, actor_id, Permission.SSO_MANAGE)
    claimed = _domain(org_id, domain_id)
    if claimed.challenge != challenge:  # removed and claimed again while DNS answered
        raise NoSuchDomain()
    if claimed.verified:
        return claimed
    elsewhere = db.session.scalar(
        sa.select(OrgDomain.id).where(OrgDomain.domain == claimed.domain, OrgDomain.verified_at.is_not(None))
    )
    if elsewhere is not None:
        raise VerifiedElsewhere()
    claimed.verified_at = utcnow()
    try:
        with savepoint():
            db.session.flush()
    except IntegrityError:  # another organization verified it at the same moment
        raise VerifiedElsewhere() from None
    audit.record(org_id, "sso.domain_verified", target=f"domain:{claimed.id}", details={"domain": claimed.domain})
    policy.domain_verified(org_id, claimed.domain)
    return claimed


@atomic
def remove(org, actor_id, domain_id):
    """Give a claim up: its addresses no longer sign in through the organization, nor are they
    held to its SSO."""
    locked_role(org.id, actor_id, Permission.SSO_MANAGE)
    claimed = _domain(org.id, domain_id)
    db.session.delete(claimed)
    audit.record(org.id, "sso.domain_removed", target=f"domain:{claimed.id}",
                 details={"domain": claimed.domain, "was_verified": claimed.verified})
