"""Organizations, their members, invitations and audit log; answering an invitation."""
from saas.core.permissions import Permission
from saas.orgs import audit, invitations, service
from saas.orgs.limits import invitation_org_limit, invitation_sender_limit
from saas.orgs.schemas import (
    AuditEventSchema,
    InvitationCreateSchema,
    InvitationSchema,
    InvitationTokenSchema,
    MemberSchema,
    MembershipSchema,
    OrgCreateSchema,
    OrgSchema,
    OrgUpdateSchema,
    RemoveMemberQuerySchema,
    RoleChangeSchema,
)
from saas.web.api import SESSION
from saas.web.blueprint import ApiBlueprint, current_principal

blp = ApiBlueprint("orgs", __name__, url_prefix="/orgs", description="Organizations (teams), members, invitations.")
invitations_blp = ApiBlueprint(
    "invitations", __name__, url_prefix="/invitations", description="Answering an invitation to an organization."
)


def _org_view(org, role):
    return {"id": org.id, "name": org.name, "slug": org.slug, "personal": org.personal, "role": role,
            "require_mfa": org.require_mfa, "created_at": org.created_at}


@blp.route("", methods=["POST"])
@blp.auth(SESSION)
@blp.arguments(OrgCreateSchema)
@blp.response(201, OrgSchema)
def create_org(fields):
    """Create a team organization; the caller is its owner. Its slug is made from the name."""
    return _org_view(*service.create_org(current_principal().user, fields["name"]))


@blp.route("", methods=["GET"])
@blp.auth(SESSION)
@blp.response(200, OrgSchema(many=True))
def list_orgs():
    """The caller's organizations with their role in each, the personal one first."""
    return [_org_view(org, role) for org, role in service.orgs_of(current_principal().user)]


@blp.route("/<int:org_id>", methods=["GET"])
@blp.auth(SESSION, org="path", permission=Permission.ORG_READ)
@blp.response(200, OrgSchema)
def get_org(org_id):
    """One of the caller's organizations. Anyone else's, existing or not, is a 404."""
    principal = current_principal()
    return _org_view(principal.org, principal.role)


@blp.route("/<int:org_id>", methods=["PATCH"])
@blp.auth(SESSION, org="path", permission=Permission.ORG_UPDATE)
@blp.arguments(OrgUpdateSchema)
@blp.response(200, OrgSchema)
@blp.alt_response(409, response="CONFLICT")
def rename_org(fields, org_id):
    """Rename the organization (admins and owners; the slug stays as it is), or require two-factor
    of its members (`require_mfa`, owners only; 409 while the owner making the change has no
    two-factor). While it is required, a member without two-factor gets 403 (`errors.reason`
    `["mfa_required_by_org"]`) on every call about the organization (its paths, `X-Org-Id`
    naming it), except leaving it; they can still turn two-factor on. Its API keys are unaffected."""
    principal = current_principal()
    return _org_view(service.update_org(principal.org, principal.user, fields), principal.role)


@blp.route("/<int:org_id>", methods=["DELETE"])
@blp.auth(SESSION, org="path", permission=Permission.ORG_DELETE)
@blp.response(204)
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def delete_org(org_id):
    """Delete the organization (owners): its Stripe subscriptions are canceled first, its
    members, invitations and API keys go with it; its audit log is kept. A personal
    organization cannot be deleted (409)."""
    principal = current_principal()
    service.delete_org(principal.org, principal.user.id)


@blp.route("/<int:org_id>/members", methods=["GET"])
@blp.auth(SESSION, org="path", permission=Permission.MEMBERS_READ)
@blp.response(200, MemberSchema(many=True))
def list_members(org_id):
    """The members, in the order they joined."""
    return service.members(current_principal().org)


@blp.route("/<int:org_id>/members/<int:user_id>", methods=["PATCH"])
@blp.auth(SESSION, org="path", permission=Permission.MEMBERS_ROLE)
@blp.arguments(RoleChangeSchema)
@blp.response(200, MemberSchema)
@blp.alt_response(409, response="CONFLICT")
def change_member_role(fields, org_id, user_id):
    """Change a member's role. Admins move people between member and admin; only an owner
    grants, changes or removes `owner` (403 otherwise), and the last owner stays owner (409)."""
    principal = current_principal()
    return service.change_role(principal.org, principal.user.id, user_id, fields["role"])


@blp.route("/<int:org_id>/members/<int:user_id>", methods=["DELETE"])
@blp.auth(SESSION, org="path", permission=Permission.ORG_READ, policy_exempt=service.leaving)
@blp.arguments(RemoveMemberQuerySchema, location="query")
@blp.response(204)
@blp.alt_response(409, response="CONFLICT")
def remove_member(query, org_id, user_id):
    """Remove a member (admins; an owner only by an owner), or leave (your own `user_id`).

    Their access ends at once. The organization's API keys they created are revoked, unless
    the admin removing them passes `keep_api_keys=true`: then they stay the organization's and
    keep working (ignored when leaving). The last owner
    cannot leave or be removed (409), nor can anyone leave a personal organization.
    """
    principal = current_principal()
    service.remove_member(principal.org, principal.user.id, user_id, keep_api_keys=query["keep_api_keys"])


@blp.route("/<int:org_id>/invitations", methods=["POST"])
@blp.auth(SESSION, org="path", permission=Permission.MEMBERS_INVITE, verified_email=True,
          limits=[invitation_sender_limit, invitation_org_limit])
@blp.arguments(InvitationCreateSchema)
@blp.response(201, InvitationSchema)
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def invite(fields, org_id):
    """Invite an address with a role (admins; `owner` only by an owner); the invitation is
    mailed with a link to `FRONTEND_URL/invitations?token=...`, valid `INVITATION_TTL_DAYS`.
    409 when the address is a member's or has a pending invitation.

    The sender's address must be verified (403, `errors.reason: ["email_not_verified"]`), even
    with `REQUIRE_VERIFIED_EMAIL` off. 429 with `Retry-After` past `INVITATION_SEND_LIMIT` (per
    sender, and per organization), or past 3 invitations to one address from one organization
    in 24 hours (revoked ones included); nothing is stored or mailed then."""
    principal = current_principal()
    return invitations.invite(principal.org, principal.user, **fields)


@blp.route("/<int:org_id>/invitations", methods=["GET"])
@blp.auth(SESSION, org="path", permission=Permission.MEMBERS_INVITE)
@blp.response(200, InvitationSchema(many=True))
def list_invitations(org_id):
    """Pending invitations, newest first."""
    return invitations.pending(current_principal().org)


@blp.route("/<int:org_id>/invitations/<int:invitation_id>", methods=["DELETE"])
@blp.auth(SESSION, org="path", permission=Permission.MEMBERS_INVITE)
@blp.response(204)
def revoke_invitation(org_id, invitation_id):
    """Revoke a pending invitation: its link stops working."""
    invitations.revoke(current_principal().org, invitation_id)


@blp.route("/<int:org_id>/audit-log", methods=["GET"])
@blp.auth(SESSION, org="path", permission=Permission.AUDIT_READ)
@blp.response(200, AuditEventSchema(many=True))
@blp.paginate()
def audit_log(org_id, pagination_parameters):
    """Who did what in the organization, newest first (admins and owners). Paginated with
    `page` and `page_size` (default 10, at most 100); the `X-Pagination` header has the totals."""
    return audit.events_page(org_id, pagination_parameters)


@invitations_blp.route("/accept", methods=["POST"])
@invitations_blp.auth(SESSION)
@invitations_blp.arguments(InvitationTokenSchema)
@invitations_blp.response(200, MembershipSchema)
@invitations_blp.alt_response(400, response="BAD_REQUEST")
@invitations_blp.alt_response(403, response="FORBIDDEN")
@invitations_blp.alt_response(409, response="CONFLICT")
def accept_invitation(fields):
    """Join an organization with an invitation's token. The caller's verified email must be the
    invited address (403); a token works once, until it expires (400)."""
    return invitations.accept(current_principal().user, fields["token"])


@invitations_blp.route("/decline", methods=["POST"])
@invitations_blp.auth(SESSION)
@invitations_blp.arguments(InvitationTokenSchema)
@invitations_blp.response(204)
@invitations_blp.alt_response(400, response="BAD_REQUEST")
@invitations_blp.alt_response(403, response="FORBIDDEN")
def decline_invitation(fields):
    """Decline an invitation (the invited address's owner only)."""
    invitations.decline(current_principal().user, fields["token"])
