"""Issue 26: enterprise single sign-on per organization. Over HTTP against the project's fake
OpenID Connect providers (two customers' at once) and its fake DNS server; each rule is tried from
the side that should be refused: an unproved or public domain, a domain another organization
holds, an identity provider vouching for addresses off its organization's domains or presenting
tokens for another connection, passwords, social logins and reset mails under `enforce`, and
deactivated accounts."""
import pytest
import requests
import sqlalchemy as sa

from saas.auth.models import AuthSession
from saas.extensions import db
from saas.orgs.models import AuditEvent, Membership
from saas.sso.login import SSO_CALLBACK_ERRORS
from saas.sso.models import OrgDomain, SsoConnection, SsoIdentity
from saas.users.models import User
from saas.users.service import set_user_active
from tests.fake_oidc import OTHER_ISSUER
from tests.helpers import PASSWORD, at_once, bearer, login
from tests.mfa_support import MFA, Authenticator, enrol
from tests.org_support import Team
from tests.servers import gunicorn, refusing_port
from tests.social_support import API, front_end_params, query_of, social_settings
from tests.sso_support import (
    ACME_CLIENT,
    GLOBEX_CLIENT,
    ORGS,
    SSO,
    SSO_CALLBACK,
    SsoBrowser,
    claim,
    connect,
    connected,
    start,
    verified_domain,
    verify,
)

ME = f"{API}/api/v1/users/me"
LOGIN = f"{API}/api/v1/auth/login"
OWNER = "olivia@acme.test"


@pytest.fixture
def client(mailing, fake_oidc, fake_github, fake_dns):
    return mailing(**sso_settings(fake_oidc, fake_github, fake_dns))


def sso_settings(fake_oidc, fake_github, fake_dns, **overrides):
    """Social login's fakes, the fake DNS server, and issuers on loopback (where the fakes run)."""
    return social_settings(fake_oidc, fake_github, DNS_NAMESERVERS=fake_dns.nameserver, SSO_ALLOW_LOOPBACK="true",
                           **overrides)


@pytest.fixture
def team(client, smtp):
    return Team(client, smtp)


@pytest.fixture
def browser(client):
    return SsoBrowser(client)


@pytest.fixture
def acme(team, fake_dns, fake_idp):
    """Acme: its owner (OWNER), acme.test verified, its provider connected (not enforced)."""
    token = team.person(OWNER)
    org_id = team.org(token, "Acme")["id"]
    domain_id = verified_domain(team.client, token, org_id, "acme.test", fake_dns)
    connected(team.client, token, org_id, fake_idp)
    return {"token": token, "id": org_id, "domain_id": domain_id}


def events(org_id):
    db.session.expire_all()
    return [(event.action, event.target, event.details) for event in db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.id))]


def actions(org_id):
    return [action for action, _, _ in events(org_id)]


def user_named(email):
    db.session.expire_all()
    return db.session.scalar(sa.select(User).where(User.email == email))


def role_in(org_id, email):
    db.session.expire_all()
    return db.session.scalar(
        sa.select(Membership.role).join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id, User.email == email)
    )


def sessions_of(email):
    db.session.expire_all()
    return db.session.scalars(
        sa.select(AuthSession).join(User, User.id == AuthSession.user_id).where(User.email == email)
        .order_by(AuthSession.created_at)
    ).all()


def count(model):
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def enforce(team, acme, idp, on=True):
    """Turn ``enforce`` on (or off) as Acme's owner, who turns two-factor on first (break glass)."""
    if on and not user_named(OWNER).mfa_enabled:
        acme["device"], _ = enrol(team.client, acme["token"])
    return connected(team.client, acme["token"], acme["id"], idp, enforce=on)


# --- verified domains -------------------------------------------------------------------------


def test_a_domain_is_verified_only_when_its_txt_record_holds_the_value(team, fake_dns):
    token = team.person(OWNER)
    org_id = team.org(token)["id"]

    claimed = claim(team.client, token, org_id, "Acme.TEST.")
    assert claimed.status_code == 201, claimed.get_json()
    body = claimed.get_json()
    assert set(body) == {"id", "domain", "verified", "txt_name", "txt_value", "created_at", "verified_at"}
    assert (body["domain"], body["verified"], body["txt_name"]) == ("acme.test", False, "_saas-challenge.acme.test")
    assert body["txt_value"].startswith("saas-verification=") and len(body["txt_value"]) > 40

    nothing = verify(team.client, token, org_id, body["id"])
    assert nothing.status_code == 409
    assert "_saas-challenge.acme.test" in nothing.get_json()["message"]
    assert "no TXT record" in nothing.get_json()["message"]

    fake_dns.add_txt("_saas-challenge.acme.test", "saas-verification=someone-elses-value")
    wrong = verify(team.client, token, org_id, body["id"])
    assert wrong.status_code == 409
    assert wrong.get_json()["errors"]["found"] == ["saas-verification=someone-elses-value"]
    assert team.client.get(f"{ORGS}/{org_id}/domains", headers=bearer(token)).get_json()[0]["verified"] is False

    fake_dns.add_txt("_saas-challenge.acme.test", body["txt_value"])
    verified = verify(team.client, token, org_id, body["id"])
    assert verified.status_code == 200
    assert verified.get_json()["verified"] is True and verified.get_json()["verified_at"]
    assert fake_dns.queries_for("_saas-challenge.acme.test", "TXT")
    listed = team.client.get(f"{ORGS}/{org_id}/domains", headers=bearer(token)).get_json()
    assert [(domain["domain"], domain["verified"]) for domain in listed] == [("acme.test", True)]
    assert actions(org_id) == ["org.created", "sso.domain_added", "sso.domain_verified"]

    assert claim(team.client, token, org_id, "acme.test").status_code == 409  # claimed already
    removed = team.client.delete(f"{ORGS}/{org_id}/domains/{body['id']}", headers=bearer(token))
    assert removed.status_code == 204
    assert team.client.get(f"{ORGS}/{org_id}/domains", headers=bearer(token)).get_json() == []
    assert actions(org_id)[-1] == "sso.domain_removed"


@pytest.mark.parametrize("domain", ["gmail.com", "GMAIL.COM.", "outlook.com", "yahoo.co.jp", "proton.me"])
def test_a_public_mail_domain_cannot_be_claimed(team, domain):
    token = team.person(OWNER)
    org_id = team.org(token)["id"]

    response = claim(team.client, token, org_id, domain)

    assert response.status_code == 422
    assert "public mail domain" in response.get_json()["message"]
    assert count(OrgDomain) == 0


@pytest.mark.parametrize("domain", ["localhost", "not a domain", "acme..test", "-acme.test", "[127.0.0.1]", ""])
def test_what_is_not_a_domain_is_a_422(team, domain):
    token = team.person(OWNER)
    org_id = team.org(token)["id"]

    assert claim(team.client, token, org_id, domain).status_code == 422
    assert count(OrgDomain) == 0


def test_dns_that_cannot_be_asked_is_a_503_and_verifies_nothing(team, fake_dns):
    token = team.person(OWNER)
    org_id = team.org(token)["id"]
    claimed = claim(team.client, token, org_id, "acme.test").get_json()
    fake_dns.add_txt(claimed["txt_name"], claimed["txt_value"])
    fake_dns.mode = "servfail"

    response = verify(team.client, token, org_id, claimed["id"])

    assert response.status_code == 503 and response.get_json()["code"] == 503
    assert db.session.scalar(sa.select(OrgDomain.verified_at)) is None


def test_a_domain_verified_by_one_organization_cannot_be_verified_by_another(team, fake_dns):
    acme_token = team.person(OWNER)
    acme_id = team.org(acme_token, "Acme")["id"]
    acme_domain = verified_domain(team.client, acme_token, acme_id, "acme.test", fake_dns)
    mallory = team.person("mallory@mallory.test")
    rival_id = team.org(mallory, "Rival")["id"]

    # A pending claim proves nothing, so it is allowed (and blocks no one)...
    rival = claim(team.client, mallory, rival_id, "acme.test")
    assert rival.status_code == 201
    # ...but even with its own record published, the domain stays the verified organization's.
    fake_dns.add_txt(rival.get_json()["txt_name"], rival.get_json()["txt_value"])
    refused = verify(team.client, mallory, rival_id, rival.get_json()["id"])
    assert refused.status_code == 409
    assert refused.get_json()["errors"]["reason"] == ["domain_verified_by_another_organization"]
    db.session.expire_all()
    assert db.session.scalars(sa.select(OrgDomain.org_id).where(OrgDomain.verified_at.is_not(None))).all() == [acme_id]

    # Once Acme gives the domain up, whoever proves it holds it.
    assert team.client.delete(f"{ORGS}/{acme_id}/domains/{acme_domain}", headers=bearer(acme_token)).status_code == 204
    assert verify(team.client, mallory, rival_id, rival.get_json()["id"]).status_code == 200


def test_of_two_organizations_verifying_one_domain_at_once_one_holds_it(team, fake_dns):
    claims = []
    for owner, name in ((OWNER, "Acme"), ("mallory@mallory.test", "Rival")):
        token = team.person(owner)
        org_id = team.org(token, name)["id"]
        claimed = claim(team.client, token, org_id, "acme.test").get_json()
        fake_dns.add_txt(claimed["txt_name"], claimed["txt_value"])
        claims.append((token, org_id, claimed["id"]))
    turns = iter(claims)

    answers = at_once(team.client.application, 2, lambda client: verify(client, *next(turns)).status_code)

    assert sorted(answers) == [200, 409]
    db.session.expire_all()
    assert len(db.session.scalars(sa.select(OrgDomain).where(OrgDomain.verified_at.is_not(None))).all()) == 1


def test_only_owners_manage_domains_and_sso_admins_read_them_members_neither(team, acme, fake_idp):
    admin = team.join(acme["token"], acme["id"], "adam@acme.test", role="admin")
    member = team.join(acme["token"], acme["id"], "mia@acme.test")
    domains = f"{ORGS}/{acme['id']}/domains"

    assert team.client.get(domains, headers=bearer(admin)).status_code == 200
    assert team.client.get(f"{ORGS}/{acme['id']}/sso", headers=bearer(admin)).status_code == 200
    for token, allowed in ((admin, "sso.read"), (member, None)):
        refusals = [
            team.client.post(domains, json={"domain": "acme-two.test"}, headers=bearer(token)),
            team.client.post(f"{domains}/{acme['domain_id']}/verify", headers=bearer(token)),
            team.client.delete(f"{domains}/{acme['domain_id']}", headers=bearer(token)),
            connect(team.client, token, acme["id"], fake_idp),
            team.client.delete(f"{ORGS}/{acme['id']}/sso", headers=bearer(token)),
        ]
        if allowed is None:
            refusals += [team.client.get(domains, headers=bearer(token)),
                         team.client.get(f"{ORGS}/{acme['id']}/sso", headers=bearer(token))]
        assert [response.status_code for response in refusals] == [403] * len(refusals)
    outsider = team.person("oscar@other.test")
    assert team.client.get(domains, headers=bearer(outsider)).status_code == 404
    assert count(OrgDomain) == 1 and count(SsoConnection) == 1


def test_a_personal_organization_has_no_sso(team, fake_idp):
    token = team.person(OWNER)
    personal_id = team.client.get(f"{ORGS}", headers=bearer(token)).get_json()[0]["id"]

    assert claim(team.client, token, personal_id, "acme.test").status_code == 409
    assert connect(team.client, token, personal_id, fake_idp).status_code == 409


# --- the connection ---------------------------------------------------------------------------


def test_the_connection_is_stored_without_showing_its_secret_and_removed(team, acme, fake_idp):
    url = f"{ORGS}/{acme['id']}/sso"
    shown = team.client.get(url, headers=bearer(acme["token"]))

    assert shown.status_code == 200
    assert shown.get_json() | {"created_at": None, "updated_at": None} == {
        "issuer": fake_idp.issuer, "client_id": ACME_CLIENT[0], "enforce": False, "default_role": "member",
        "redirect_uri": SSO_CALLBACK, "created_at": None, "updated_at": None,
    }
    assert ACME_CLIENT[1] not in shown.get_data(as_text=True)
    stored = db.session.get(SsoConnection, acme["id"])
    assert ACME_CLIENT[1] not in stored.client_secret_encrypted  # encrypted at rest
    assert actions(acme["id"])[-1] == "sso.enabled"
    assert connected(team.client, acme["token"], acme["id"], fake_idp)  # the same again: nothing to record
    assert actions(acme["id"])[-1] == "sso.enabled"
    connected(team.client, acme["token"], acme["id"], fake_idp, ("acme-saas", "a-new-secret"), default_role="admin")
    assert events(acme["id"])[-1][0::2] == ("sso.updated", {
        "issuer": fake_idp.issuer, "client_id": "acme-saas", "default_role": "admin", "secret_changed": True})

    assert team.client.delete(url, headers=bearer(acme["token"])).status_code == 204
    assert team.client.get(url, headers=bearer(acme["token"])).status_code == 404
    assert start(team.client, "ada@acme.test").status_code == 404
    assert actions(acme["id"])[-1] == "sso.disabled"


@pytest.mark.parametrize("discovery, named", [
    ("other_issuer", OTHER_ISSUER), ("not_found", "404"), ("invalid_json", "JSON"), ("unavailable", "GET"),
])
def test_an_issuer_whose_discovery_document_is_unusable_is_a_422_naming_it(team, fake_idp, discovery, named):
    token = team.person(OWNER)
    org_id = team.org(token)["id"]
    fake_idp.discovery = discovery

    response = connect(team.client, token, org_id, fake_idp)

    assert response.status_code == 422, response.get_json()
    assert named in response.get_json()["message"] and response.get_json()["errors"]["issuer"]
    assert count(SsoConnection) == 0


def test_an_unreachable_issuer_is_a_422(team):
    token = team.person(OWNER)
    org_id = team.org(token)["id"]
    with refusing_port() as port:
        body = {"issuer": f"http://127.0.0.1:{port}/realms/gone", "client_id": "x", "client_secret": "y"}
        response = team.client.put(f"{ORGS}/{org_id}/sso", json=body, headers=bearer(token))

    assert response.status_code == 422 and "issuer" in response.get_json()["errors"]
    assert count(SsoConnection) == 0


def test_an_issuer_inside_the_servers_network_is_a_422_and_never_fetched(mailing, smtp, fake_idp, fake_dns):
    team = Team(mailing(DNS_NAMESERVERS=fake_dns.nameserver), smtp)  # SSO_ALLOW_LOOPBACK is false
    token = team.person(OWNER)
    org_id = team.org(token)["id"]
    fake_dns.add_a("idp.acme.test", "10.1.2.3")
    fake_dns.add_a("metadata.acme.test", "169.254.169.254")
    port = fake_idp.issuer.split(":")[2].split("/")[0]

    for issuer, named in (
        (fake_idp.issuer, "https://"),
        (f"https://127.0.0.1:{port}/realms/acme", "loopback"),
        ("https://localhost/realms/acme", "loopback"),
        ("https://10.0.0.7/realms/acme", "private"),
        ("https://idp.acme.test/realms/acme", "private"),
        ("https://metadata.acme.test/", "link-local"),
        ("https://nowhere.acme.test/", "does not exist"),
    ):
        body = {"issuer": issuer, "client_id": "x", "client_secret": "y"}
        response = team.client.put(f"{ORGS}/{org_id}/sso", json=body, headers=bearer(token))
        assert response.status_code == 422, (issuer, response.get_json())
        assert named in response.get_json()["message"], (issuer, response.get_json()["message"])
    assert fake_idp.requests == [] and count(SsoConnection) == 0


# --- logging in -------------------------------------------------------------------------------


def test_start_finds_the_organization_of_a_verified_domain_with_sso_only(team, acme, fake_dns):
    found = start(team.client, "Ada@ACME.test")
    assert found.status_code == 200
    assert found.get_json() == {
        "authorize_url": f"{SSO}/authorize?email=ada@acme.test", "organization": {"id": acme["id"], "name": "Acme"},
    }
    for address in ("ada@gmail.com", "ada@sub.acme.test", "ada@acme.test.example"):
        assert start(team.client, address).status_code == 404
    # A pending claim (no proof) is not a domain that signs in.
    claim(team.client, acme["token"], acme["id"], "acme-pending.test")
    assert start(team.client, "ada@acme-pending.test").status_code == 404
    assert start(team.client, "not an address").status_code == 422


def test_a_login_with_a_new_address_creates_a_verified_account_and_membership(browser, acme, fake_idp, fake_stripe):
    fake_idp.sign_in_as(sub="okta-ada", email="ada@acme.test", name="Ada Lovelace")

    tokens = browser.sso_tokens("ada@acme.test")

    me = browser.client.get(ME, headers=bearer(tokens["access_token"])).get_json()
    assert (me["email"], me["email_verified"], me["has_password"], me["full_name"]) == (
        "ada@acme.test", True, False, "Ada Lovelace")
    assert role_in(acme["id"], "ada@acme.test") == "member"
    (session,) = sessions_of("ada@acme.test")
    assert (session.methods, session.sso_org_id) == ("sso", acme["id"])
    (identity,) = db.session.scalars(sa.select(SsoIdentity)).all()
    assert (identity.org_id, identity.issuer, identity.subject) == (acme["id"], fake_idp.issuer, "okta-ada")
    user = user_named("ada@acme.test")
    assert [(action, target) for action, target, _ in events(acme["id"])][-2:] == [
        ("sso.account_created", f"user:{user.id}"), ("member.joined", f"user:{user.id}")]
    assert user.personal_org is not None  # as at registration (and its Stripe customer, inline)
    assert fake_stripe.requests_to("POST", "/v1/customers")

    # The next login finds the same account by the identity, whatever address the provider gives now.
    fake_idp.sign_in_as(sub="okta-ada", email="ada.lovelace@acme.test")
    again = browser.sso_tokens("ada@acme.test")
    assert browser.client.get(ME, headers=bearer(again["access_token"])).get_json()["id"] == me["id"]
    assert count(User) == 2 and count(SsoIdentity) == 1


def test_a_login_links_the_existing_account_with_the_address_on_the_domain(team, browser, acme, fake_idp):
    bob = team.person("bob@acme.test")
    bob_id = browser.client.get(ME, headers=bearer(bob)).get_json()["id"]
    fake_idp.sign_in_as(sub="okta-bob", email="bob@acme.test")

    tokens = browser.sso_tokens("bob@acme.test")

    assert browser.client.get(ME, headers=bearer(tokens["access_token"])).get_json()["id"] == bob_id
    assert role_in(acme["id"], "bob@acme.test") == "member"
    assert db.session.scalar(sa.select(SsoIdentity.user_id)) == bob_id
    assert "sso.identity_linked" in actions(acme["id"])
    login(team.client, "bob@acme.test")  # not enforced: the password still works
    assert browser.client.get(ME, headers=bearer(bob)).status_code == 200


def test_linking_an_account_whose_address_was_never_proved_takes_it_from_whoever_made_it(team, browser, acme, fake_idp):
    squatter = team.person("carol@acme.test", verify=False)
    fake_idp.sign_in_as(sub="okta-carol", email="carol@acme.test")

    tokens = browser.sso_tokens("carol@acme.test")

    me = browser.client.get(ME, headers=bearer(tokens["access_token"])).get_json()
    assert (me["email_verified"], me["has_password"]) == (True, False)
    assert browser.client.get(ME, headers=bearer(squatter)).status_code == 401
    assert team.client.post(LOGIN, json={"email": "carol@acme.test", "password": PASSWORD}).status_code == 401


def test_an_address_off_the_organizations_domains_creates_nothing(browser, acme, fake_idp):
    fake_idp.sign_in_as(sub="okta-eve", email="eve@evil.test")

    assert browser.sso_error("ada@acme.test") == "domain_not_allowed"
    fake_idp.sign_in_as(sub="okta-nobody", email=None)
    assert browser.sso_error("ada@acme.test") == "domain_not_allowed"

    assert count(User) == 1 and count(SsoIdentity) == 0  # the owner only
    assert user_named("eve@evil.test") is None


def test_an_address_the_provider_says_is_unverified_creates_nothing(browser, acme, fake_idp):
    fake_idp.sign_in_as(sub="okta-ada", email="ada@acme.test", email_verified=False)

    assert browser.sso_error("ada@acme.test") == "email_not_verified"
    assert count(User) == 1 and count(SsoIdentity) == 0


def test_another_organizations_provider_cannot_sign_in_this_ones_addresses(
        team, browser, acme, fake_idp, second_fake_idp, fake_dns):
    bob = team.person("bob@acme.test")
    bob_id = browser.client.get(ME, headers=bearer(bob)).get_json()["id"]
    globex_token = team.person("gina@globex.test")
    globex_id = team.org(globex_token, "Globex")["id"]
    verified_domain(team.client, globex_token, globex_id, "globex.test", fake_dns)
    connected(team.client, globex_token, globex_id, second_fake_idp, GLOBEX_CLIENT)

    # Globex's provider vouches for Acme's address: refused, nothing linked.
    second_fake_idp.sign_in_as(sub="globex-bob", email="bob@acme.test")
    assert browser.sso_error("gus@globex.test") == "domain_not_allowed"
    assert count(SsoIdentity) == 0 and role_in(globex_id, "bob@acme.test") is None

    # A token of Globex's connection in Acme's flow: another audience, another issuer, another key.
    fake_idp.sign_in_as(sub="okta-bob", email="bob@acme.test")
    for forged in ({"audience": GLOBEX_CLIENT[0]}, {"issuer": second_fake_idp.issuer}, {"foreign_key": True}):
        fake_idp.forge_id_tokens(**forged)
        assert browser.sso_error("bob@acme.test") == "provider_error", forged
    assert count(SsoIdentity) == 0

    # A code Globex's provider issued, brought to Acme's callback with Acme's state.
    acme_start = browser.start(authorize_url=start(browser.client, "bob@acme.test").get_json()["authorize_url"])
    state = dict(part.split("=", 1) for part in acme_start.headers["Location"].split("?", 1)[1].split("&"))["state"]
    globex_back = browser.at_provider(browser.start(
        authorize_url=start(browser.client, "gus@globex.test").get_json()["authorize_url"]))
    globex_code = dict(part.split("=", 1) for part in globex_back.split("?", 1)[1].split("&"))["code"]
    assert front_end_params(browser.open(f"{SSO_CALLBACK}?code={globex_code}&state={state}")) == {
        "error": "provider_error"}
    assert count(SsoIdentity) == 0 and db.session.get(User, bob_id).email == "bob@acme.test"


def test_the_provider_is_sent_state_nonce_pkce_and_the_address_as_login_hint(browser, acme, fake_idp):
    started = browser.start(authorize_url=start(browser.client, "Ada@acme.test").get_json()["authorize_url"])

    params = query_of(started.headers["Location"])
    assert started.headers["Location"].startswith(f"{fake_idp.issuer}/authorize?")
    assert (params["client_id"], params["redirect_uri"], params["scope"]) == (
        ACME_CLIENT[0], SSO_CALLBACK, "openid email profile")
    assert params["code_challenge_method"] == "S256" and len(params["state"]) >= 43 and len(params["nonce"]) >= 43
    assert params["login_hint"] == "ada@acme.test"
    assert "saas_oauth=" in started.headers["Set-Cookie"] and "HttpOnly" in started.headers["Set-Cookie"]


def test_the_flow_is_bound_to_its_browser_and_works_once(client, acme, fake_idp):
    fake_idp.sign_in_as(sub="okta-ada", email="ada@acme.test")
    browser, stranger = SsoBrowser(client), SsoBrowser(client.application.test_client())
    first = browser.start(authorize_url=start(client, "ada@acme.test").get_json()["authorize_url"])
    back = browser.at_provider(first)

    assert front_end_params(stranger.open(back)) == {"error": "invalid_state"}  # another browser
    code = front_end_params(browser.open(back))["code"]
    assert front_end_params(browser.open(back)) == {"error": "invalid_state"}  # replayed
    assert browser.exchange(code).status_code == 200
    assert browser.exchange(code).status_code == 401  # the one-time code, once


def test_a_provider_that_cannot_be_reached_at_sign_in_ends_it_at_the_front_end(browser, acme, fake_idp):
    fake_idp.discovery = "unavailable"

    assert browser.sso_error("ada@acme.test") == "provider_unavailable"
    assert count(User) == 1


def test_a_connection_removed_during_the_sign_in_ends_it(browser, acme, fake_idp):
    fake_idp.sign_in_as(sub="okta-ada", email="ada@acme.test")
    begun = browser.start(authorize_url=start(browser.client, "ada@acme.test").get_json()["authorize_url"])
    back = browser.at_provider(begun)
    assert browser.client.delete(f"{ORGS}/{acme['id']}/sso", headers=bearer(acme["token"])).status_code == 204

    assert front_end_params(browser.open(back)) == {"error": "sso_not_configured"}
    assert count(User) == 1


def test_a_deleted_account_loses_its_sso_identity_and_the_export_lists_them(team, browser, acme, fake_idp):
    token = team.person("bob@acme.test")
    fake_idp.sign_in_as(sub="okta-bob", email="bob@acme.test")
    browser.sso_tokens("bob@acme.test")

    export = team.get(f"{API}/api/v1/users/me/export", token).get_json()
    (identity,) = export["sso_identities"]
    assert (identity["org_id"], identity["subject"], identity["email"]) == (acme["id"], "okta-bob", "bob@acme.test")
    old_id = team.get(ME, token).get_json()["id"]
    assert team.client.delete(ME, json={"current_password": PASSWORD}, headers=bearer(token)).status_code == 204
    assert count(SsoIdentity) == 0

    fresh = browser.sso_tokens("bob@acme.test")["access_token"]
    assert team.get(ME, fresh).get_json()["id"] != old_id  # a new account; the deleted one stays deleted


def test_a_deactivated_account_cannot_sign_in_linked_or_not(team, browser, acme, fake_idp):
    fake_idp.sign_in_as(sub="okta-ada", email="ada@acme.test")
    browser.sso_tokens("ada@acme.test")
    team.person("bob@acme.test")
    for email in ("ada@acme.test", "bob@acme.test"):
        with db.session.begin():
            set_user_active(db.session.scalar(sa.select(User).where(User.email == email)), False)

    assert browser.sso_error("ada@acme.test") == "account_disabled"
    fake_idp.sign_in_as(sub="okta-bob", email="bob@acme.test")
    assert browser.sso_error("bob@acme.test") == "account_disabled"
    assert count(SsoIdentity) == 1 and role_in(acme["id"], "bob@acme.test") is None


def test_an_account_with_its_own_two_factor_still_gets_the_second_step(team, browser, acme, fake_idp):
    token = team.person("bob@acme.test")
    device, _ = enrol(team.client, token)
    fake_idp.sign_in_as(sub="okta-bob", email="bob@acme.test")

    answer = browser.exchange(browser.sso_code("bob@acme.test")).get_json()

    assert answer["mfa_required"] is True and "access_token" not in answer
    verified = browser.client.post(f"{MFA}/verify", json={"mfa_token": answer["mfa_token"], "code": device.code()})
    assert verified.status_code == 200
    session = sessions_of("bob@acme.test")[-1]
    assert (session.methods, session.sso_org_id) == ("sso,mfa", acme["id"])


def test_an_sso_session_meets_the_require_mfa_of_its_own_organization_only(team, browser, acme, fake_idp):
    device, _ = enrol(team.client, acme["token"])
    assert team.client.patch(f"{ORGS}/{acme['id']}", json={"require_mfa": True},
                             headers=bearer(acme["token"])).status_code == 200
    other_owner = team.person("owen@other.test")
    enrol(team.client, other_owner)
    other_id = team.org(other_owner, "Other")["id"]
    team.join(other_owner, other_id, "bob@acme.test")
    assert team.client.patch(f"{ORGS}/{other_id}", json={"require_mfa": True},
                             headers=bearer(other_owner)).status_code == 200
    fake_idp.sign_in_as(sub="okta-bob", email="bob@acme.test")

    token = browser.sso_tokens("bob@acme.test")["access_token"]

    assert team.get(f"{ORGS}/{acme['id']}", token).status_code == 200
    refused = team.get(f"{ORGS}/{other_id}", token)
    assert refused.status_code == 403 and refused.get_json()["errors"]["reason"] == ["mfa_required_by_org"]


# --- SSO required -----------------------------------------------------------------------------


def test_enforce_refuses_passwords_social_logins_and_reset_mail_and_ends_earlier_sessions(
        team, smtp, browser, acme, fake_idp, fake_oidc):
    bob = team.person("bob@acme.test")
    outsider = team.person("oscar@other.test")
    fake_idp.sign_in_as(sub="okta-bob", email="bob@acme.test")
    through_sso = browser.sso_tokens("bob@acme.test")["access_token"]

    shown = enforce(team, acme, fake_idp)

    assert shown["enforce"] is True and actions(acme["id"])[-1] == "sso.enforced"
    assert team.get(ME, bob).status_code == 401  # opened with a password before: ended
    assert team.get(ME, through_sso).status_code == 200  # opened through Acme's SSO: kept
    assert team.get(ME, outsider).status_code == 200  # not on Acme's domains
    refused = team.client.post(LOGIN, json={"email": "bob@acme.test", "password": PASSWORD})
    assert refused.status_code == 401 and refused.get_json()["errors"]["reason"] == ["sso_required"]
    wrong = team.client.post(LOGIN, json={"email": "bob@acme.test", "password": "not the password at all"})
    assert wrong.status_code == 401 and "errors" not in wrong.get_json()  # tells nothing without the password
    login(team.client, "oscar@other.test")

    # A social sign-up with an address on the domain creates nothing.
    fake_oidc.sign_in_as(sub="google-dave", email="dave@acme.test")
    assert front_end_params(browser.sign_in("oidc")) == {"error": "sso_required"}
    assert user_named("dave@acme.test") is None

    # A reset mails nothing to bob (the same 202), while it does to someone off the domain.
    smtp.messages.clear()
    for email in ("bob@acme.test", "oscar@other.test"):
        assert team.client.post(f"{API}/api/v1/auth/password-reset", json={"email": email}).status_code == 202
    team.mailed("oscar@other.test", invitation=False)
    assert smtp.to("bob@acme.test") == []

    # SSO keeps working, and turning enforce off gives the password back.
    assert browser.sso_tokens("bob@acme.test")["access_token"]
    enforce(team, acme, fake_idp, on=False)
    assert actions(acme["id"])[-1] == "sso.not_enforced"
    login(team.client, "bob@acme.test")


def test_logins_halfway_when_enforce_comes_cannot_finish(team, browser, acme, fake_idp, fake_oidc):
    device, _ = enrol(team.client, team.person("bob@acme.test"))
    pending = team.client.post(LOGIN, json={"email": "bob@acme.test", "password": PASSWORD}).get_json()
    assert pending["mfa_required"] is True
    fake_oidc.sign_in_as(sub="google-dave", email="dave@acme.test")
    social_code = browser.code("oidc")  # dave's social sign-up, its code not exchanged yet

    enforce(team, acme, fake_idp)

    late = team.client.post(f"{MFA}/verify", json={"mfa_token": pending["mfa_token"], "code": device.code()})
    assert late.status_code == 401
    assert browser.exchange(social_code).status_code == 401
    assert sessions_of("bob@acme.test")[-1].revoked_reason == "sso-required"  # the one enrol used


def test_a_linked_social_login_is_refused_under_enforce(team, browser, acme, fake_idp, fake_oidc):
    fake_oidc.sign_in_as(sub="google-dave", email="dave@acme.test")
    browser.tokens("oidc")  # dave signed up with the social provider before Acme enforced SSO
    enforce(team, acme, fake_idp)

    assert front_end_params(browser.sign_in("oidc")) == {"error": "sso_required"}


def test_a_domain_verified_while_enforced_holds_its_accounts_at_once(team, acme, fake_idp, fake_dns):
    enforce(team, acme, fake_idp)
    bea = team.person("bea@acme-labs.test")

    verified_domain(team.client, acme["token"], acme["id"], "acme-labs.test", fake_dns)

    assert team.get(ME, bea).status_code == 401
    refused = team.client.post(LOGIN, json={"email": "bea@acme-labs.test", "password": PASSWORD})
    assert refused.get_json()["errors"]["reason"] == ["sso_required"]


def test_an_owner_with_two_factor_keeps_password_login_to_break_glass(team, acme, fake_idp):
    device = acme["device"] = enrol(team.client, acme["token"])[0]
    admin = team.join(acme["token"], acme["id"], "adam@acme.test", role="admin")
    enrol(team.client, admin)
    owner_session = login_with_two_factor(team, OWNER, device)

    enforce(team, acme, fake_idp)

    assert team.get(ME, owner_session).status_code == 200  # the owner's session stays
    assert team.get(ME, login_with_two_factor(team, OWNER, device)).status_code == 200
    assert team.get(ME, admin).status_code == 401
    refused = team.client.post(LOGIN, json={"email": "adam@acme.test", "password": PASSWORD})
    assert refused.status_code == 401 and refused.get_json()["errors"]["reason"] == ["sso_required"]


def test_enforcing_needs_an_owner_with_two_factor_and_only_owners_have_break_glass(team, acme, fake_idp):
    refused = connect(team.client, acme["token"], acme["id"], fake_idp, enforce=True)
    assert refused.status_code == 409 and refused.get_json()["errors"]["reason"] == ["mfa_required_to_enforce"]
    assert db.session.get(SsoConnection, acme["id"]).enforce is False
    second_owner = team.join(acme["token"], acme["id"], "otto@acme.test", role="owner")

    enforce(team, acme, fake_idp)

    # An owner without two-factor has no break glass: SSO it is.
    assert team.get(ME, second_owner).status_code == 401
    refused = team.client.post(LOGIN, json={"email": "otto@acme.test", "password": PASSWORD})
    assert refused.status_code == 401 and refused.get_json()["errors"]["reason"] == ["sso_required"]


def login_with_two_factor(team, email, device):
    first = team.client.post(LOGIN, json={"email": email, "password": PASSWORD}).get_json()
    assert first["mfa_required"] is True, first
    second = team.client.post(f"{MFA}/verify", json={"mfa_token": first["mfa_token"], "code": device.code()})
    assert second.status_code == 200, second.get_json()
    return second.get_json()["access_token"]


def test_every_callback_error_is_in_the_callbacks_description(client):
    description = client.get("/openapi.json").get_json()["paths"]["/api/v1/auth/sso/callback"]["get"]["description"]

    assert set(SSO_CALLBACK_ERRORS) == {
        "access_denied", "invalid_state", "provider_error", "provider_unavailable", "account_disabled",
        "identity_in_use", "email_not_verified", "domain_not_allowed", "sso_not_configured"}
    for reason in SSO_CALLBACK_ERRORS:
        assert f"`{reason}`" in description


def test_the_public_steps_are_rate_limited_per_address(mailing, fake_oidc, fake_github, fake_dns, acme):
    client = mailing(**sso_settings(fake_oidc, fake_github, fake_dns, RATELIMIT_ENABLED="true",
                                    RATELIMIT_OAUTH_IP="2 per minute"))

    starts = [start(client, email).status_code for email in ("ada@acme.test", "nobody@nowhere.test", "ada@acme.test")]
    authorizes = [client.get(f"{SSO}/authorize?email=ada@acme.test").status_code for _ in range(3)]

    assert starts == [200, 404, 429] and authorizes == [302, 302, 429]


# --- as production serves it ------------------------------------------------------------------


def test_sso_through_gunicorn_in_production(database, redis_url, smtp, fake_idp, fake_dns):
    """Verify a domain against the fake DNS server, connect the provider, sign a new person in
    through the browser flow (a Secure, __Host- cookie), then enforce: a password is refused."""
    settings = {**smtp.settings, "DNS_NAMESERVERS": fake_dns.nameserver, "FRONTEND_URL": "https://app.example.test",
                "SSO_ALLOW_LOOPBACK": "true"}
    fake_idp.sign_in_as(sub="okta-ada", email="ada@acme.test", name="Ada")
    with gunicorn(APP_ENV="production", REDIS_URL="", RATELIMIT_ENABLED="false", **settings) as server:
        base = str(server)

        def call(method, path, token=None, **kwargs):
            headers = bearer(token) if token else {}
            return requests.request(method, f"{base}{path}", headers=headers, timeout=10, **kwargs)

        for email in (OWNER, "bob@acme.test"):
            assert call("POST", "/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
        owner = call("POST", "/api/v1/auth/login", json={"email": OWNER, "password": PASSWORD}).json()["access_token"]
        org_id = call("POST", "/api/v1/orgs", owner, json={"name": "Acme"}).json()["id"]
        claimed = call("POST", f"/api/v1/orgs/{org_id}/domains", owner, json={"domain": "acme.test"}).json()
        fake_dns.add_txt(claimed["txt_name"], claimed["txt_value"])
        verified = call("POST", f"/api/v1/orgs/{org_id}/domains/{claimed['id']}/verify", owner)
        assert verified.status_code == 200 and verified.json()["verified"] is True
        fake_idp.register_client(*ACME_CLIENT, [f"{base}/api/v1/auth/sso/callback"])
        body = {"issuer": fake_idp.issuer, "client_id": ACME_CLIENT[0], "client_secret": ACME_CLIENT[1]}
        connection = call("PUT", f"/api/v1/orgs/{org_id}/sso", owner, json=body)
        assert connection.status_code == 200 and connection.json()["redirect_uri"] == f"{base}/api/v1/auth/sso/callback"

        started = call("POST", "/api/v1/auth/sso/start", json={"email": "ada@acme.test"}).json()
        assert started["organization"] == {"id": org_id, "name": "Acme"}
        to_provider = requests.get(started["authorize_url"], allow_redirects=False, timeout=10)
        assert to_provider.status_code == 302 and to_provider.headers["Location"].startswith(fake_idp.issuer)
        cookie = to_provider.headers["Set-Cookie"]
        assert cookie.startswith("__Host-saas_oauth=") and "Secure" in cookie and "HttpOnly" in cookie
        back = requests.get(to_provider.headers["Location"], allow_redirects=False, timeout=10).headers["Location"]
        done = requests.get(back, headers={"Cookie": cookie.split(";")[0]}, allow_redirects=False, timeout=10)
        assert done.status_code == 302 and done.headers["Location"].startswith("https://app.example.test/oauth/callback?code=")
        code = done.headers["Location"].split("code=", 1)[1]
        pair = call("POST", "/api/v1/auth/oauth/exchange", json={"code": code})
        assert pair.status_code == 200
        me = call("GET", "/api/v1/users/me", pair.json()["access_token"]).json()
        assert (me["email"], me["email_verified"], me["has_password"]) == ("ada@acme.test", True, False)

        setup = call("POST", f"{MFA}/totp/setup", owner, json={"current_password": PASSWORD}).json()
        device = Authenticator(setup["secret"])
        assert call("POST", f"{MFA}/totp/enable", owner, json={"code": device.code()}).status_code == 200
        assert call("PUT", f"/api/v1/orgs/{org_id}/sso", owner, json={**body, "enforce": True}).status_code == 200
        refused = call("POST", "/api/v1/auth/login", json={"email": "bob@acme.test", "password": PASSWORD})
        assert refused.status_code == 401 and refused.json()["errors"]["reason"] == ["sso_required"]
        assert call("POST", "/api/v1/auth/login", json={"email": OWNER, "password": PASSWORD}).json()["mfa_required"]
