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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import recurring, resources, schema
from .routes import INCLUDABLE_NAMES, ROUTES, Route
from .state import API_VERSION, ApiError, Obj, Replay, Store, public

logger = logging.getLogger(__name__)


def _header(flag: bool) -> str:
    return "true" if flag else "false"


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


# ---------------------------------------------------------------- API dispatch
def handle_api(
    s: Store, method: str, path: str, query: str, body: bytes, headers: Any
) -> tuple[int, bytes, dict[str, str]]:
    """Run one /v1 call: auth, injected faults, idempotency replay, checks, routing, rendering."""
    request_id = s.new_id("req_", 14)
    out_headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
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
        route, match = _match(method, path)
        failure = s.take_failure(method, path)
        if failure is not None:
            out_headers["Stripe-Should-Retry"] = _header(failure.retryable)
        if failure is not None and not failure.after:
            return failure.status, _json({"error": failure.error}), out_headers
        cached = s.replay((api_key, idem)) if idem else None
        if cached is not None and cached.fingerprint != fingerprint:
            error = ApiError(
                f"Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{idem}' if you meant to "
                f"execute a different request.",
                type="idempotency_error",
            )
            return 400, _json(error.body()), out_headers
        if cached is not None:
            out_headers.update({"Idempotent-Replayed": "true", "Idempotency-Key": idem or ""})
            return cached.status, cached.body, out_headers
        s.request = {"id": request_id, "idempotency_key": idem}
        ran = True
        try:
            status, payload = 200, _run(s, route, match, method, path, params)
        except ApiError as exc:
            status, payload, ran = exc.status, exc.body(), not exc.validation
            if exc.should_retry is not None:
                out_headers["Stripe-Should-Retry"] = _header(exc.should_retry)
        except Exception:  # a simulator bug must still answer like Stripe's 500s do
            logger.exception("simulator error on %s %s", method, path)
            status, payload = (
                500,
                {"error": {"type": "api_error", "message": "Simulator internal error."}},
            )
        finally:
            s.request = {"id": None, "idempotency_key": None}
        encoded = _json(payload)
        # Stripe keeps the first result of any request that ran (errors and 500s included),
        # not of one refused by parameter validation.
        if idem and ran and route is not None:
            s.idempotency[(api_key, idem)] = Replay(fingerprint, status, encoded, s.now())
            out_headers["Idempotency-Key"] = idem
        s.request_log.append((method, route.pattern.pattern if route else path, status))
        if method != "GET":
            s.save()
        if failure is not None:  # ``after``: the work is done, but the client sees an error
            return failure.status, _json({"error": failure.error}), out_headers
        return status, encoded, out_headers


def _match(method: str, path: str) -> tuple[Route | None, re.Match[str] | None]:
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match and route.method == method:
            return route, match
    return None, None


def _run(
    s: Store, route: Route | None, match: re.Match[str] | None, method: str, path: str, params: Obj
) -> Obj:
    if route is None or match is None:
        raise ApiError(
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/. (The Stripe simulator does not "
            "implement this endpoint: README, Stripe.)",
            status=404,
            validation=True,
        )
    schema.check_params(params, route.params)
    for key in params:
        if key not in route.models:
            raise ApiError(
                f"The Stripe simulator does not model the parameter {key} of {method} "
                f"/v1/{path.removeprefix('/v1/')} (Stripe accepts it). Leave it out, or add it "
                "to stripe_simulator/.",
                key,
                validation=True,
            )
    expand = params.get("expand") or []
    expand = list(expand.values()) if isinstance(expand, dict) else expand
    expand = [expand] if isinstance(expand, str) else expand
    schema.check_expand(expand, route.answers, INCLUDABLE_NAMES)
    result = route.handler(s, params, *match.groups())
    if result.get("object") == "list":
        result["url"] = path
    return s.render(result, expand)


def _json(payload: Obj) -> bytes:
    return json.dumps(payload, indent=2).encode()


# ---------------------------------------------------------------- hosted checkout page
def checkout_page(s: Store, session: Obj, error: str | None = None) -> str:
    """A minimal stand-in for Stripe's hosted page: a card number field and a cancel link."""
    esc = html.escape
    items = "".join(
        f"<li>{esc(li['description'])} &times; {li['quantity'] or 'metered'}: "
        f"{li['amount_total'] / 100:.2f} {esc(li['currency'].upper())}</li>"
        for li in session["_line_items"]
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
                    s.save()
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
                s.save()
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
