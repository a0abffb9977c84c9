"""A small fake of the Stripe HTTP API for tests.

The real ``stripe`` SDK is pointed at this server through
``stripe.StripeClient(api_key, base_addresses={"api": fake.url}, ...)`` so the
app's Stripe code runs unmodified: request encoding, retries, timeouts and
error mapping are all done by the SDK, and only the network peer is fake.

Only the endpoints the app uses are implemented; everything else answers 404
in Stripe's error envelope, so a new, unsupported call fails loudly.

Also provides ``sign_payload`` and ``make_event`` to build signed webhooks.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
import string
import time
import uuid
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import stripe
from werkzeug.wrappers import Request, Response

from tests.fake_server import LoopbackServer

API_VERSION = stripe.api_version
DAY = 24 * 60 * 60
SUBSCRIPTION_STATUSES = (
    "active",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)


class RecordedRequest(NamedTuple):
    """One request as seen by the fake; unpacks as (method, path, params, headers)."""

    method: str
    path: str
    params: dict
    headers: dict


class StripeApiError(Exception):
    """Raised by a route handler to answer with a Stripe error envelope."""

    def __init__(self, status, message, type_="invalid_request_error", code=None, param=None):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_
        self.code, self.param = code, param


def new_id(prefix: str, length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "_" + "".join(secrets.choice(alphabet) for _ in range(length))


def decode_form(pairs) -> dict:
    """Decode Stripe's bracket form encoding into nested dicts and lists.

    ``[("metadata[user_id]", "1"), ("line_items[0][price]", "p")]`` becomes
    ``{"metadata": {"user_id": "1"}, "line_items": [{"price": "p"}]}``.
    Values stay strings, exactly as they were on the wire.
    """
    root: dict = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [key]
        node = root
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return _lists_from_indexed_dicts(root)


def _lists_from_indexed_dicts(value):
    if not isinstance(value, dict):
        return value
    converted = {k: _lists_from_indexed_dicts(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """Return a ``Stripe-Signature`` header value for ``payload``, as Stripe signs webhooks."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    digest = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def make_event(event_type: str, data_object: dict, event_id: str | None = None, created: int | None = None) -> dict:
    """Build a Stripe ``event`` (snapshot payload) wrapping a copy of ``data_object``."""
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created,
        "data": {"object": copy.deepcopy(data_object)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


class FakeStripe(LoopbackServer):
    """Fake Stripe API server; see the module docstring.

    Mutable state (``customers``, ``subscriptions``, ...) is the live data the
    server answers from, so tests may read it directly. ``mode`` simulates
    outages: "ok", "down" (500 api_error), "unavailable" (connection closed
    without an answer) or "slow" (sleep ``delay`` seconds, then answer).
    """

    NAME = "fake-stripe"
    ROUTES = [
        ("POST", r"/v1/customers", "_create_customer"),
        ("GET", r"/v1/customers/(?P<id>[^/]+)", "_retrieve_customer"),
        ("POST", r"/v1/customers/(?P<id>[^/]+)", "_update_customer"),
        ("DELETE", r"/v1/customers/(?P<id>[^/]+)", "_delete_customer"),
        ("POST", r"/v1/checkout/sessions", "_create_checkout_session"),
        ("GET", r"/v1/checkout/sessions", "_list_checkout_sessions"),
        ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)", "_retrieve_checkout_session"),
        ("POST", r"/v1/checkout/sessions/(?P<id>[^/]+)/expire", "_expire_checkout_session"),
        ("POST", r"/v1/billing_portal/sessions", "_create_portal_session"),
        ("GET", r"/v1/subscriptions", "_list_subscriptions"),
        ("GET", r"/v1/subscriptions/(?P<id>[^/]+)", "_retrieve_subscription"),
        ("POST", r"/v1/subscriptions/(?P<id>[^/]+)", "_update_subscription"),
        ("DELETE", r"/v1/subscriptions/(?P<id>[^/]+)", "_cancel_subscription"),
        ("POST", r"/v1/billing/meter_events", "_create_meter_event"),
    ]

    def __init__(self, prices=("price_pro", "price_team")):
        super().__init__()
        self._default_prices = tuple(prices)
        self.requests: list[RecordedRequest] = []
        self.customers: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.checkout_sessions: dict[str, dict] = {}
        self.portal_sessions: dict[str, dict] = {}
        self.meter_events: list[dict] = []
        self._idempotent: dict[str, tuple] = {}
        self.reset()

    def reset(self) -> None:
        """Forget all data and recorded requests; mode back to "ok", delay to 10 s."""
        with self._lock:
            super().reset()
            self.prices = set(self._default_prices)
            # Cleared in place so references held by tests stay valid.
            for container in (
                self.requests,
                self.customers,
                self.subscriptions,
                self.checkout_sessions,
                self.portal_sessions,
                self.meter_events,
                self._idempotent,
            ):
                container.clear()

    # -- test helpers --------------------------------------------------------

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        """Recorded requests with this HTTP method whose path starts with ``path_prefix``."""
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and r.path.startswith(path_prefix)]

    def add_customer(self, email=None, name=None, metadata=None, customer_id=None) -> dict:
        """Create a customer server-side, as if made earlier through the API."""
        with self._lock:
            customer = self._customer_object(
                {"email": email, "name": name, "metadata": metadata or {}}, customer_id
            )
            self.customers[customer["id"]] = customer
            return customer

    def delete_customer(self, customer_id: str) -> None:
        """Mark a customer deleted (and cancel its subscriptions, as Stripe does)."""
        with self._lock:
            if customer_id not in self.customers:
                raise KeyError(f"FakeStripe has no customer {customer_id!r}")
            self.customers[customer_id] = {"id": customer_id, "object": "customer", "deleted": True}
            for sub in self.subscriptions.values():
                if sub["customer"] == customer_id and sub["status"] not in ("canceled", "incomplete_expired"):
                    self.update_subscription(sub["id"], status="canceled")

    def add_subscription(
        self,
        customer_id: str,
        price_id: str,
        status: str = "active",
        current_period_end: int | None = None,
        cancel_at_period_end: bool = False,
        trial_end: int | None = None,
        metadata: dict | None = None,
        quantity: int = 1,
    ) -> dict:
        """Create a subscription server-side and return the stored object.

        The customer must exist (create it through the API or ``add_customer``);
        the price need not be in ``prices`` so tests can simulate legacy prices.
        """
        with self._lock:
            if customer_id not in self.customers:
                raise KeyError(f"FakeStripe has no customer {customer_id!r}; use add_customer() first")
            sub = self._subscription_object(
                customer_id=customer_id,
                price_id=price_id,
                status=status,
                current_period_end=current_period_end,
                cancel_at_period_end=cancel_at_period_end,
                trial_end=trial_end,
                metadata=metadata or {},
                quantity=quantity,
            )
            self.subscriptions[sub["id"]] = sub
            return sub

    def update_subscription(self, subscription_id: str, **changes) -> dict:
        """Change a stored subscription; takes the same keywords as ``add_subscription``."""
        with self._lock:
            sub = self.subscriptions[subscription_id]
            item = sub["items"]["data"][0]
            fields = {
                "customer_id": sub["customer"],
                "price_id": item["price"]["id"],
                "status": sub["status"],
                "current_period_end": item["current_period_end"],
                "cancel_at_period_end": sub["cancel_at_period_end"],
                "trial_end": sub["trial_end"],
                "metadata": sub["metadata"],
                "quantity": item["quantity"],
            }
            unknown = set(changes) - set(fields)
            if unknown:
                raise TypeError(f"unknown subscription fields: {sorted(unknown)}")
            fields.update(changes)
            updated = self._subscription_object(
                **fields, subscription_id=sub["id"], item_id=item["id"], created=sub["created"]
            )
            if updated["ended_at"] and sub["ended_at"]:
                updated["canceled_at"], updated["ended_at"] = sub["canceled_at"], sub["ended_at"]
            # Updated in place so references held by tests stay live.
            sub.clear()
            sub.update(updated)
            return sub

    # -- WSGI plumbing -------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        raw = request.get_data(as_text=True) if request.method == "POST" else request.query_string.decode()
        params = decode_form(parse_qsl(raw, keep_blank_values=True))
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.path, params, dict(request.headers)))
            generation = self._generation

        self._act_out_outage(environ, self.mode, generation)
        if self.mode == "down":
            error = StripeApiError(500, "An unknown error occurred", type_="api_error")
            return self._error_response(error, request)(environ, start_response)
        return self._answer(request, params)(environ, start_response)

    def _answer(self, request: Request, params: dict) -> Response:
        if not re.fullmatch(r"Bearer sk_\S+", request.headers.get("Authorization", "")):
            return self._error_response(StripeApiError(401, "Invalid API Key provided"), request)
        handler, path_args = self._route(request.method, request.path)
        if handler is None:
            message = (
                f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/."
            )
            return self._error_response(StripeApiError(404, message), request)

        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        # Held for the whole call so concurrent retries with one key run one at a time.
        with self._lock:
            if key and key in self._idempotent:
                return self._replay(key, request, params)
            try:
                body = handler(params, **path_args)
            except StripeApiError as error:
                return self._error_response(error, request)
            text = json.dumps(body)  # a snapshot: later changes must not alter replays
            response = self._json_response(200, text, request)
            if key:
                # Like Stripe, only results of requests that got executed are saved;
                # failed validation may be retried with the same key.
                self._idempotent[key] = (request.path, params, text, response.headers["Request-Id"])
                response.headers["Idempotency-Key"] = key
            return response

    def _route(self, method: str, path: str):
        for route_method, pattern, name in self.ROUTES:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                return getattr(self, name), match.groupdict()
        return None, {}

    def _replay(self, key: str, request: Request, params: dict) -> Response:
        path, stored_params, text, original_request_id = self._idempotent[key]
        if path != request.path:
            message = (
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{request.path}' vs '{path}'). Try using a key other than "
                f"'{key}' if you meant to execute a different request."
            )
            return self._error_response(StripeApiError(400, message, type_="idempotency_error"), request)
        if stored_params != params:
            message = (
                "Keys for idempotent requests can only be used with the same parameters they were "
                f"first used with. Try using a key other than '{key}' if you meant to execute a "
                "different request."
            )
            return self._error_response(StripeApiError(400, message, type_="idempotency_error"), request)
        response = self._json_response(200, text, request)
        response.headers["Idempotency-Key"] = key
        response.headers["Idempotent-Replayed"] = "true"
        response.headers["Original-Request"] = original_request_id
        return response

    @staticmethod
    def _json_response(status: int, text: str, request: Request, request_id: str | None = None) -> Response:
        return Response(
            text,
            status=status,
            content_type="application/json",
            headers={
                "Request-Id": request_id or new_id("req", 14),
                "Stripe-Version": request.headers.get("Stripe-Version", API_VERSION),
            },
        )

    def _error_response(self, error: StripeApiError, request: Request) -> Response:
        request_id = new_id("req", 14)
        body = {"message": error.message, "type": error.type}
        if error.code:
            body["code"] = error.code
            body["doc_url"] = "https://stripe.com/docs/error-codes/" + error.code.replace("_", "-")
        if error.param:
            body["param"] = error.param
        body["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return self._json_response(error.status, json.dumps({"error": body}), request, request_id)

    # -- object builders ---------------------------------------------------------

    @staticmethod
    def _customer_object(params: dict, customer_id: str | None = None) -> dict:
        # An empty string means "unset" to Stripe, so it comes back as null.
        params = {k: v for k, v in params.items() if v != ""}
        return {
            "id": customer_id or new_id("cus", 14),
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": int(time.time()),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": params.get("description"),
            "discount": None,
            "email": params.get("email"),
            "invoice_prefix": secrets.token_hex(4).upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
            "name": params.get("name"),
            "phone": params.get("phone"),
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }

    @staticmethod
    def _subscription_object(
        *,
        customer_id,
        price_id,
        status,
        current_period_end,
        cancel_at_period_end,
        trial_end,
        metadata,
        quantity,
        subscription_id=None,
        item_id=None,
        created=None,
    ) -> dict:
        if status not in SUBSCRIPTION_STATUSES:
            raise ValueError(f"unknown subscription status {status!r}")
        now = int(time.time())
        created = now if created is None else created
        period_end = now + 30 * DAY if current_period_end is None else int(current_period_end)
        period_start = period_end - 30 * DAY
        if status == "trialing" and trial_end is None:
            trial_end = period_end
        subscription_id = subscription_id or new_id("sub")
        ended = now if status in ("canceled", "incomplete_expired") else None
        item = {
            "id": item_id or new_id("si", 14),
            "object": "subscription_item",
            "created": created,
            # Since API version 2025-03-31 the billing period lives on the item.
            "current_period_start": period_start,
            "current_period_end": period_end,
            "metadata": {},
            "price": {
                "id": price_id,
                "object": "price",
                "active": True,
                "billing_scheme": "per_unit",
                "created": created,
                "currency": "usd",
                "livemode": False,
                "lookup_key": None,
                "metadata": {},
                "nickname": None,
                "product": "prod_" + hashlib.sha1(price_id.encode()).hexdigest()[:14],
                "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
                "type": "recurring",
                "unit_amount": None,
            },
            "quantity": quantity,
            "subscription": subscription_id,
        }
        return {
            "id": subscription_id,
            "object": "subscription",
            "billing_cycle_anchor": period_start,
            "cancel_at": period_end if cancel_at_period_end else None,
            "cancel_at_period_end": bool(cancel_at_period_end),
            "canceled_at": ended,
            "collection_method": "charge_automatically",
            "created": created,
            "currency": "usd",
            # Older API versions (and code written for them) read these top-level.
            "current_period_start": period_start,
            "current_period_end": period_end,
            "customer": customer_id,
            "default_payment_method": None,
            "ended_at": ended,
            "items": {
                "object": "list",
                "data": [item],
                "has_more": False,
                "total_count": 1,
                "url": f"/v1/subscription_items?subscription={subscription_id}",
            },
            "latest_invoice": None,
            "livemode": False,
            "metadata": dict(metadata),
            "start_date": created,
            "status": status,
            "trial_end": trial_end,
            "trial_start": created if trial_end else None,
        }

    # -- route handlers ------------------------------------------------------------

    def _require(self, params: dict, *names: str) -> None:
        for name in names:
            if params.get(name) in (None, ""):
                raise StripeApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)

    def _live_customer(self, customer_id: str, param: str) -> dict:
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            raise StripeApiError(
                400 if param != "id" else 404,
                f"No such customer: '{customer_id}'",
                code="resource_missing",
                param=param,
            )
        return customer

    def _create_customer(self, params: dict) -> dict:
        customer = self._customer_object(params)
        self.customers[customer["id"]] = customer
        return customer

    def _retrieve_customer(self, params: dict, id: str) -> dict:
        if id not in self.customers:
            raise StripeApiError(404, f"No such customer: '{id}'", code="resource_missing", param="id")
        return self.customers[id]

    def _update_customer(self, params: dict, id: str) -> dict:
        customer = self._live_customer(id, "id")
        for field in ("email", "name"):
            if field in params:
                customer[field] = params[field]
        if "metadata" in params:
            customer["metadata"] = {**customer.get("metadata", {}), **params["metadata"]}
        return customer

    def _delete_customer(self, params: dict, id: str) -> dict:
        self._live_customer(id, "id")
        self.delete_customer(id)
        return self.customers[id]

    def _create_checkout_session(self, params: dict) -> dict:
        self._require(params, "mode")
        if params["mode"] not in ("payment", "setup", "subscription"):
            raise StripeApiError(400, f"Invalid mode: {params['mode']!r}", code="parameter_invalid_string", param="mode")
        if params.get("customer"):
            self._live_customer(params["customer"], "customer")
        line_items = params.get("line_items") or []
        if params["mode"] != "setup" and not line_items:
            self._require(params, "line_items")
        for index, item in enumerate(line_items):
            price = item.get("price") if isinstance(item, dict) else None
            if price not in self.prices:
                raise StripeApiError(
                    400, f"No such price: '{price}'", code="resource_missing", param=f"line_items[{index}][price]"
                )
        session_id = new_id("cs_test", 58)
        now = int(time.time())
        session = {
            "id": session_id,
            "object": "checkout.session",
            "allow_promotion_codes": (
                None if "allow_promotion_codes" not in params else params["allow_promotion_codes"] == "true"
            ),
            "amount_subtotal": None,
            "amount_total": None,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": "usd",
            "customer": params.get("customer"),
            "customer_email": params.get("customer_email"),
            "expires_at": now + DAY,
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
            "mode": params["mode"],
            "payment_status": "unpaid",
            "status": "open",
            "subscription": None,
            "success_url": params.get("success_url"),
            "ui_mode": "hosted",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        self.checkout_sessions[session_id] = session
        return session

    def _retrieve_checkout_session(self, params: dict, id: str) -> dict:
        if id not in self.checkout_sessions:
            raise StripeApiError(404, f"No such checkout.session: '{id}'", code="resource_missing", param="session")
        return self.checkout_sessions[id]

    def _list_checkout_sessions(self, params: dict) -> dict:
        status = params.get("status")
        if status is not None and status not in ("open", "complete", "expired"):
            raise StripeApiError(400, f"Invalid status: {status!r}", code="parameter_invalid_string", param="status")
        matches = [
            session for session in reversed(list(self.checkout_sessions.values()))  # newest first
            if (not params.get("customer") or session["customer"] == params["customer"])
            and (status is None or session["status"] == status)
        ]
        limit = int(params.get("limit", 10))
        return {"object": "list", "data": matches[:limit], "has_more": len(matches) > limit, "url": "/v1/checkout/sessions"}

    def _expire_checkout_session(self, params: dict, id: str) -> dict:
        session = self._retrieve_checkout_session(params, id)
        if session["status"] != "open":
            raise StripeApiError(
                400,
                'Only Checkout Sessions with a status in ["open"] can be expired. '
                f'This Checkout Session has a status of "{session["status"]}".',
            )
        session["status"] = "expired"
        session["url"] = None
        return session

    def complete_checkout_session(self, session_id: str) -> None:
        """Mark a checkout session paid, as Stripe does when the customer finishes it."""
        with self._lock:
            self.checkout_sessions[session_id].update(status="complete", payment_status="paid", url=None)

    def _create_portal_session(self, params: dict) -> dict:
        self._require(params, "customer")
        self._live_customer(params["customer"], "customer")
        session = {
            "id": new_id("bps"),
            "object": "billing_portal.session",
            "configuration": "bpc_fake_default",
            "created": int(time.time()),
            "customer": params["customer"],
            "flow": None,
            "livemode": False,
            "locale": None,
            "on_behalf_of": None,
            "return_url": params.get("return_url"),
            "url": f"https://billing.stripe.com/p/session/test_{secrets.token_urlsafe(24)}",
        }
        self.portal_sessions[session["id"]] = session
        return session

    def _live_subscription(self, id: str) -> dict:
        sub = self.subscriptions.get(id)
        if sub is None:
            raise StripeApiError(404, f"No such subscription: '{id}'", code="resource_missing", param="id")
        return sub

    def _update_subscription(self, params: dict, id: str) -> dict:
        """Quantity changes of the subscription's item (what per-seat billing sends)."""
        sub = self._live_subscription(id)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise StripeApiError(400, "A canceled subscription can only update its cancellation_details and metadata.")
        changes = {}
        for item in params.get("items") or []:
            if item.get("id") != sub["items"]["data"][0]["id"]:
                raise StripeApiError(400, f"Invalid subscription_item id: {item.get('id')}", param="items")
            if "quantity" in item:
                quantity = int(item["quantity"])
                if quantity < 0:
                    raise StripeApiError(400, "Invalid integer: quantity", param="items[0][quantity]")
                changes["quantity"] = quantity
        if "metadata" in params:
            changes["metadata"] = {**sub["metadata"], **params["metadata"]}
        return self.update_subscription(id, **changes)

    def _cancel_subscription(self, params: dict, id: str) -> dict:
        sub = self._live_subscription(id)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise StripeApiError(400, f"No such subscription: '{id}'; it is canceled already", code="resource_missing")
        return self.update_subscription(id, status="canceled")

    def _list_subscriptions(self, params: dict) -> dict:
        status = params.get("status")
        if status is not None and status not in (*SUBSCRIPTION_STATUSES, "all", "ended"):
            raise StripeApiError(400, f"Invalid status: {status!r}", code="parameter_invalid_string", param="status")
        try:
            limit = int(params.get("limit", 10))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise StripeApiError(400, "Invalid integer: limit must be between 1 and 100", param="limit")

        def wanted(sub):
            if params.get("customer") and sub["customer"] != params["customer"]:
                return False
            if params.get("price") and sub["items"]["data"][0]["price"]["id"] != params["price"]:
                return False
            if status is None:  # Stripe's default hides canceled subscriptions
                return sub["status"] != "canceled"
            if status == "ended":
                return sub["status"] in ("canceled", "incomplete_expired")
            return status == "all" or sub["status"] == status

        matches = [s for s in reversed(list(self.subscriptions.values())) if wanted(s)]  # newest first
        if params.get("starting_after"):
            ids = [s["id"] for s in matches]
            matches = matches[ids.index(params["starting_after"]) + 1 :] if params["starting_after"] in ids else []
        return {
            "object": "list",
            "data": matches[:limit],
            "has_more": len(matches) > limit,
            "url": "/v1/subscriptions",
        }

    def _retrieve_subscription(self, params: dict, id: str) -> dict:
        if id not in self.subscriptions:
            raise StripeApiError(404, f"No such subscription: '{id}'", code="resource_missing", param="id")
        return self.subscriptions[id]

    def _create_meter_event(self, params: dict) -> dict:
        self._require(params, "event_name", "payload")
        payload = params["payload"]
        if not isinstance(payload, dict) or not payload.get("stripe_customer_id"):
            raise StripeApiError(
                400, "Missing required param: payload[stripe_customer_id].",
                code="parameter_missing", param="payload[stripe_customer_id]",
            )
        now = int(time.time())
        timestamp = int(params.get("timestamp", now))
        if not now - 35 * DAY <= timestamp <= now + 300:
            raise StripeApiError(
                400, "Timestamp must be within the past 35 days and at most 5 minutes in the future.",
                code="parameter_invalid_integer", param="timestamp",
            )
        identifier = params.get("identifier") or str(uuid.uuid4())
        if any(event["identifier"] == identifier for event in self.meter_events):
            raise StripeApiError(
                400, f"A meter event with identifier '{identifier}' already exists.", param="identifier"
            )
        event = {
            "object": "billing.meter_event",
            "created": now,
            "event_name": params["event_name"],
            "identifier": identifier,
            "livemode": False,
            "payload": payload,
            "timestamp": timestamp,
        }
        self.meter_events.append(event)
        return event
