"""HTTP front of the simulator: auth, form decoding, routing, idempotency, the checkout page.

Only the stdlib HTTP server is used (HTTP/1.0, one thread per request) so the simulator has no
dependency beyond ``stripe`` and never imports Django.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import billing, recurring, resources
from .state import API_VERSION, ApiError, Obj, Store, public

logger = logging.getLogger(__name__)
Handler = Callable[..., Obj]


# ---------------------------------------------------------------- form decoding
def decode_form(pairs: list[tuple[str, str]]) -> Obj:
    """Stripe's ``a[b][0][c]=v`` / ``expand[]=x`` encoding into nested dicts and lists."""
    root: Obj = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head, *rest.rstrip("]").split("][")] if rest else [head]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1] or str(len(node))] = value
    return _listify(root)


def _listify(node: Any, key: str = "") -> Any:
    """Dicts keyed 0..n become lists; ``metadata``/``payload`` keep their keys verbatim."""
    if not isinstance(node, dict) or key in ("metadata", "payload"):
        return node
    node = {k: _listify(v, k) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def _api_key(header: str | None) -> str | None:
    """Bearer (what ``stripe`` sends) or Basic (``curl -u sk_test_x:``); test-mode keys only."""
    scheme, _, key = (header or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(key + "==").decode(errors="replace").partition(":")[0]
        except ValueError:
            return None
    elif scheme.lower() != "bearer":
        return None
    key = key.strip()
    return key if key.startswith(("sk_test_", "rk_test_")) else None


# ---------------------------------------------------------------- generic handlers
def _fmt(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def lister(object_type: str, *fields: str, extra: Any = None) -> Handler:
    """GET list handler: exact-match filters on ``fields``, then an optional custom filter."""

    def handler(s: Store, p: Obj) -> Obj:
        items = s.all(object_type)
        for f in fields:
            if p.get(f) not in (None, ""):
                items = [o for o in items if _fmt(o.get(f)) == p[f]]
        return s.page(extra(items, p) if extra else items, p)

    return handler


def retriever(object_type: str) -> Handler:
    return lambda s, p, object_id: s.get(object_id, object_type)


def _by_lookup_keys(items: list[Obj], p: Obj) -> list[Obj]:
    keys = p.get("lookup_keys")
    keys = list(keys.values()) if isinstance(keys, dict) else keys
    return [o for o in items if o["lookup_key"] in keys] if keys else items


def _by_sub_status(items: list[Obj], p: Obj) -> list[Obj]:
    """Stripe hides canceled subscriptions unless ``status=canceled`` or ``status=all``."""
    status = p.get("status") or "not_canceled"
    if status == "all":
        return items
    if status == "not_canceled":
        return [o for o in items if o["status"] != "canceled"]
    return [o for o in items if o["status"] == status]


ID = r"([^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(f"/v1/{path}"), handler)
    for method, path, handler in [
        ("GET", "customers", lister("customer", "email")),
        ("POST", "customers", resources.create_customer),
        ("GET", f"customers/{ID}", resources.retrieve_customer),
        ("POST", f"customers/{ID}", resources.update_customer),
        ("DELETE", f"customers/{ID}", resources.delete_customer),
        ("GET", "products", lister("product", "active")),
        ("POST", "products", resources.create_product),
        ("GET", f"products/{ID}", retriever("product")),
        ("GET", "prices", lister("price", "active", "product", "type", extra=_by_lookup_keys)),
        ("POST", "prices", resources.create_price),
        ("GET", f"prices/{ID}", retriever("price")),
        ("GET", "billing/meters", lister("billing.meter", "status")),
        ("POST", "billing/meters", resources.create_meter),
        ("GET", f"billing/meters/{ID}", retriever("billing.meter")),
        ("POST", "billing/meter_events", resources.create_meter_event),
        ("GET", "checkout/sessions", lister("checkout.session", "customer", "subscription")),
        ("POST", "checkout/sessions", resources.create_checkout_session),
        ("GET", f"checkout/sessions/{ID}", retriever("checkout.session")),
        ("GET", "subscriptions", lister("subscription", "customer", extra=_by_sub_status)),
        ("POST", "subscriptions", recurring.create_subscription),
        ("GET", f"subscriptions/{ID}", retriever("subscription")),
        ("POST", f"subscriptions/{ID}", recurring.update_subscription),
        ("DELETE", f"subscriptions/{ID}", recurring.cancel_subscription),
        ("GET", f"subscription_items/{ID}", retriever("subscription_item")),
        ("GET", "invoices", lister("invoice", "customer", "subscription", "status")),
        ("GET", f"invoices/{ID}", retriever("invoice")),
        ("GET", "charges", lister("charge", "customer", "payment_intent")),
        ("GET", f"charges/{ID}", retriever("charge")),
        ("GET", f"payment_intents/{ID}", retriever("payment_intent")),
        ("GET", f"payment_methods/{ID}", retriever("payment_method")),
        ("GET", "refunds", lister("refund", "charge", "payment_intent")),
        ("POST", "refunds", billing.create_refund),
        ("GET", f"refunds/{ID}", retriever("refund")),
        ("GET", "events", lister("event", "type")),
        ("GET", f"events/{ID}", retriever("event")),
    ]
]


# ---------------------------------------------------------------- API dispatch
def handle_api(
    s: Store, method: str, path: str, query: str, body: bytes, headers: Any
) -> tuple[int, bytes, dict[str, str]]:
    """Run one /v1 call: auth, injected faults, idempotency replay, routing, rendering."""
    request_id = s.new_id("req_", 14)
    out_headers = {
        "Request-Id": request_id,
        "Stripe-Version": headers.get("Stripe-Version") or API_VERSION,
    }
    api_key = _api_key(headers.get("Authorization"))
    if api_key is None:
        error = ApiError(
            "Invalid API Key provided: the simulator accepts sk_test_ keys only.", status=401
        )
        return 401, _json(error.body()), out_headers
    pairs = parse_qsl(query, keep_blank_values=True)
    pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    params = decode_form(pairs)
    idem = headers.get("Idempotency-Key") if method == "POST" else None
    fingerprint = json.dumps([method, path, sorted(pairs)])
    with s.lock:
        failure = s.take_failure(method, path)
        if failure is not None:
            out_headers["Stripe-Should-Retry"] = _fmt(failure.retryable)
        if failure is not None and not failure.after:
            return failure.status, _json({"error": failure.error}), out_headers
        cached = s.idempotency.get((api_key, idem)) if idem else None
        if cached is not None and cached[0] != fingerprint:
            error = ApiError(
                f"Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{idem}' if you meant to "
                f"execute a different request.",
                type="idempotency_error",
            )
            return 400, _json(error.body()), out_headers
        if cached is not None:
            out_headers.update({"Idempotent-Replayed": "true", "Idempotency-Key": idem or ""})
            return cached[1], cached[2], out_headers
        s.request = {"id": request_id, "idempotency_key": idem}
        try:
            status, payload = 200, _route(s, method, path, params)
        except ApiError as exc:
            status, payload = exc.status, exc.body()
            if exc.should_retry is not None:
                out_headers["Stripe-Should-Retry"] = _fmt(exc.should_retry)
        except Exception:  # a simulator bug must still answer like Stripe's 500s do
            logger.exception("simulator error on %s %s", method, path)
            status, payload = (
                500,
                {"error": {"type": "api_error", "message": "Simulator internal error."}},
            )
        finally:
            s.request = {"id": None, "idempotency_key": None}
        encoded = _json(payload)
        # Stripe stores results once an endpoint ran (not for validation errors or 500s).
        if idem and (status < 400 or status == 402):
            s.idempotency[(api_key, idem)] = (fingerprint, status, encoded)
            out_headers["Idempotency-Key"] = idem
        if failure is not None:  # ``after``: the work is done, but the client sees an error
            return failure.status, _json({"error": failure.error}), out_headers
        return status, encoded, out_headers


def _route(s: Store, method: str, path: str, params: Obj) -> Obj:
    for route_method, pattern, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match and route_method == method:
            result = handler(s, params, *match.groups())
            if result.get("object") == "list":
                result["url"] = path
            expand = params.get("expand") or []
            expand = list(expand.values()) if isinstance(expand, dict) else expand
            return s.render(result, [expand] if isinstance(expand, str) else expand)
    raise ApiError(f"Unrecognized request URL ({method}: {path}).", status=404)


def _json(payload: Obj) -> bytes:
    return json.dumps(payload, indent=2).encode()


# ---------------------------------------------------------------- hosted checkout page
def checkout_page(s: Store, session: Obj, error: str | None = None) -> str:
    """A minimal stand-in for Stripe's hosted page: a card number field and a cancel link."""
    esc = html.escape
    items = "".join(
        f"<li>{esc(li['description'])} &times; {li['quantity'] or 'metered'}: "
        f"{li['amount_total'] / 100:.2f} {esc(li['currency'].upper())}</li>"
        for li in session["_line_items"]["data"]
    )
    if session["status"] != "open":
        body = f"<p>This checkout session is {esc(session['status'])}.</p>"
    else:
        body = (
            f"{f'<p role=alert style=color:#b00>{esc(error)}</p>' if error else ''}"
            '<form method="post"><label>Card number <input name="card_number" '
            'value="4242 4242 4242 4242" autocomplete="off" size="24"></label> '
            '<button type="submit">Pay</button></form>'
            "<p><small>Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is "
            "declined, 4000 0000 0000 9995 has insufficient funds.</small></p>"
        )
        if session["cancel_url"]:
            body += f'<p><a href="{esc(session["cancel_url"])}">Cancel and go back</a></p>'
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>Checkout (simulated)"
        f"</title></head><body><h1>Simulated Stripe Checkout</h1><ul>{items}</ul>"
        f"<p>Total: {session['amount_total'] / 100:.2f} "
        f"{esc((session['currency'] or '').upper())}</p>{body}</body></html>"
    )


class SimulatorServer(ThreadingHTTPServer):
    """Carries the store to request handlers; joins request threads on close."""

    def __init__(self, address: tuple[str, int], store: Store) -> None:
        self.store = store
        super().__init__(address, RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client hang-ups are routine for a local tool: log quietly instead of a traceback."""
        logger.debug("request from %s failed: %r", client_address, sys.exc_info()[1])


class RequestHandler(BaseHTTPRequestHandler):
    server: SimulatorServer
    server_version = "stripe-simulator"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        s = self.server.store
        if path.startswith("/v1/"):
            status, payload, headers = handle_api(s, method, path, url.query, body, self.headers)
            return self._send(status, payload, "application/json", headers)
        match = re.fullmatch(r"/checkout/([^/]+)", path)
        if match:
            return self._checkout(method, match.group(1), body)
        match = re.fullmatch(r"/_simulator/(advance_clock|renew|fail_renewal)", path)
        if match and method == "POST":
            return self._helper(match.group(1), decode_form(parse_qsl(body.decode())))
        return self._send(404, b"Not found", "text/plain")

    def _checkout(self, method: str, session_id: str, body: bytes) -> None:
        s = self.server.store
        with s.lock:
            session = s.objects.get(session_id)
            if session is None or session["object"] != "checkout.session":
                return self._send(404, b"No such checkout session", "text/plain")
            if method == "POST" and session["status"] == "open":
                card = dict(parse_qsl(body.decode())).get("card_number", "")
                try:
                    recurring.complete_checkout(s, session_id, card)
                except ApiError as exc:
                    page = checkout_page(s, session, exc.message)
                    return self._send(402, page.encode(), "text/html; charset=utf-8")
                target = (session["success_url"] or "").replace("{CHECKOUT_SESSION_ID}", session_id)
                return self._send(303, b"", "text/plain", {"Location": target})
            page = checkout_page(s, session)
        return self._send(200, page.encode(), "text/html; charset=utf-8")

    def _helper(self, name: str, p: Obj) -> None:
        """Dev-only clock/renewal controls for ``python -m`` use: no auth, loopback only."""
        s = self.server.store
        try:
            with s.lock:
                if name == "advance_clock":
                    s.advance(resources.get_int(p, "seconds", required=True))
                    recurring.process_due(s)
                    result: Obj = {"now": s.now()}
                else:
                    sub = s.get(p.get("subscription"), "subscription", "subscription")
                    result = public(recurring.renew(s, sub, fail=name == "fail_renewal"))
        except ApiError as exc:
            return self._send(exc.status, _json(exc.body()), "application/json")
        return self._send(200, _json(result), "application/json")

    def _send(
        self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)
