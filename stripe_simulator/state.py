"""In-memory store behind the simulator: Stripe-shaped JSON objects, a clock, and one lock.

Everything lives in one dict keyed by object id, so retrieve, list and ``expand[]`` can stay
generic and what we serve is exactly what we store (minus ``_``-prefixed bookkeeping keys).
A single re-entrant lock serialises every API call: a simulator gains nothing from finer
locking, and it makes idempotency and check-then-act logic (refund limits) trivially race-free.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stripe

Obj = dict[str, Any]
API_VERSION: str = stripe.api_version
_ALPHABET = string.ascii_letters + string.digits


class ApiError(Exception):
    """A Stripe-shaped API error; the HTTP layer turns it into the ``{"error": ...}`` envelope."""

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        *,
        status: int = 400,
        type: str = "invalid_request_error",  # noqa: A002 - Stripe's own field name
        decline_code: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status
        self.type, self.decline_code, self.should_retry = type, decline_code, should_retry

    def body(self) -> Obj:
        error: Obj = {"type": self.type, "message": self.message}
        for key in ("code", "param", "decline_code"):
            if getattr(self, key) is not None:
                error[key] = getattr(self, key)
        return {"error": error}


def missing(kind: str, object_id: object, param: str = "id") -> ApiError:
    """The 404 Stripe returns for an unknown id (``stripe`` raises InvalidRequestError)."""
    return ApiError(f"No such {kind}: '{object_id}'", param, "resource_missing", status=404)


def public(value: Any) -> Any:
    """Deep copy without private ``_`` keys: what leaves the simulator is never shared state."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def list_object(data: list[Obj], url: str) -> Obj:
    """Stripe's list envelope, used for top-level lists and embedded ones (items, lines)."""
    return {"object": "list", "data": data, "has_more": False, "url": url}


@dataclass
class Failure:
    """An error injected by ``fail_next``; ``after`` means: run the call, then lose the reply."""

    prefix: str
    method: str | None
    status: int
    error: Obj
    after: bool
    retryable: bool
    times: int = 1


@dataclass
class Store:
    """All simulator state. Hold ``lock`` around anything that reads and then writes."""

    base_url: str = ""
    on_event: Callable[[Obj], None] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    objects: dict[str, Obj] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], tuple[str, int, bytes]] = field(default_factory=dict)
    meter_events: list[Obj] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    request: Obj = field(default_factory=lambda: {"id": None, "idempotency_key": None})
    offset: int = 0
    frozen_at: int | None = None
    invoice_seq: int = 0

    # ---------------------------------------------------------------- clock
    def now(self) -> int:
        """Simulated Unix time: wall clock plus ``offset``, or ``frozen_at`` when frozen."""
        return self.frozen_at if self.frozen_at is not None else int(time.time()) + self.offset

    def advance(self, seconds: int) -> None:
        if self.frozen_at is not None:
            self.frozen_at += int(seconds)
        else:
            self.offset += int(seconds)

    # ---------------------------------------------------------------- objects
    @staticmethod
    def new_id(prefix: str, length: int = 24) -> str:
        return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))

    def add(self, object_type: str, prefix: str, fields: Obj, object_id: str | None = None) -> Obj:
        """Create and store an object with the fields every Stripe object carries."""
        obj: Obj = {
            "id": object_id or self.new_id(prefix, 58 if prefix == "cs_test_" else 24),
            "object": object_type,
            "created": self.now(),
            "livemode": False,
            "metadata": {},
        }
        obj.update(fields)
        self.objects[obj["id"]] = obj
        return obj

    def get(self, object_id: Any, object_type: str, param: str = "id") -> Obj:
        """Look an object up by id and type, raising Stripe's 404 if absent or deleted."""
        obj = self.objects.get(object_id) if isinstance(object_id, str) else None
        if obj is None or obj["object"] != object_type or obj.get("deleted"):
            raise missing(object_type.rsplit(".", 1)[-1].replace("_", " "), object_id, param)
        return obj

    def all(self, object_type: str) -> list[Obj]:
        """Live objects of one type, newest first (Stripe's list order)."""
        return [
            o
            for o in reversed(self.objects.values())
            if o["object"] == object_type and not o.get("deleted")
        ]

    def page(self, items: list[Obj], params: Obj) -> Obj:
        """Apply ``limit`` and ``starting_after`` (auto-pagination) to a newest-first list."""
        limit = max(1, min(100, int(params.get("limit") or 10)))
        ids = [o["id"] for o in items]
        if params.get("starting_after") in ids:
            items = items[ids.index(params["starting_after"]) + 1 :]
        result = list_object(items[:limit], "")
        result["has_more"] = len(items) > limit
        return result

    def render(self, obj: Obj, expand: list[str]) -> Obj:
        """Public copy of ``obj`` with ``expand[]`` paths (``a.b``, ``data.a``) inlined."""
        out = public(obj)
        for path in expand:
            out = self._expand(out, path.split("."))
        return out

    def _expand(self, node: Any, parts: list[str]) -> Any:
        if not parts:
            return node
        if isinstance(node, list):
            return [self._expand(n, parts) for n in node]
        if not isinstance(node, dict):
            return node
        head, rest = parts[0], parts[1:]
        value = node.get(head)
        if value is None and isinstance(node.get("id"), str):
            # Some fields (checkout line_items) only appear when expanded; kept as "_<name>".
            value = public(self.objects.get(node["id"], {}).get("_" + head))
        if isinstance(value, str) and value in self.objects:
            value = public(self.objects[value])
        if value is not None:
            node[head] = self._expand(value, rest)
        return node

    # ---------------------------------------------------------------- events
    def emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> Obj:
        """Record an event with a snapshot of ``obj`` and hand it to the webhook dispatcher."""
        data: Obj = {"object": public(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = self.add(
            "event",
            "evt_",
            {
                "type": event_type,
                "data": data,
                "api_version": API_VERSION,
                "pending_webhooks": 1 if self.on_event else 0,
                "request": dict(self.request),
            },
        )
        del event["metadata"]  # the one Stripe object without metadata
        if self.on_event:
            self.on_event(event)
        return event

    # ---------------------------------------------------------------- fault injection
    def take_failure(self, method: str, path: str) -> Failure | None:
        """Pop (or count down) the first injected failure matching this request."""
        for failure in self.failures:
            if path.startswith(failure.prefix) and failure.method in (None, method):
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
                return failure
        return None


def diff(before: Obj, after: Obj) -> Obj:
    """``previous_attributes`` for an ``*.updated`` event: old values of changed top-level keys."""
    new = public(after)
    return {k: v for k, v in public(before).items() if new.get(k) != v}
