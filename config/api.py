"""Shared API plumbing of the interface layer: the exception handler that renders every
error in the one shape (core.errors), strict input, paging, throttles, schema docs.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
from collections.abc import Mapping
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import connections
from django.http import Http404, HttpResponse, JsonResponse
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status, throttling
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from config.cache import warn_cache_down
from core.errors import ApplicationError, error_body

logger = logging.getLogger(__name__)


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    """Turn DRF's nested error detail into 'field: message' lines for the summary."""
    if isinstance(detail, Mapping):
        lines = []
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix
            lines.extend(_flatten(value, name))
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def _details(detail: Any) -> dict:
    if isinstance(detail, Mapping):
        return {str(k): v for k, v in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {}


_TITLES = {
    exceptions.ParseError: "Malformed request body",
    exceptions.UnsupportedMediaType: "Unsupported media type",
    exceptions.NotAuthenticated: "Authentication required",
    exceptions.AuthenticationFailed: "Authentication failed",
    exceptions.PermissionDenied: "Forbidden",
    exceptions.NotFound: "Not found",
    exceptions.MethodNotAllowed: "Method not allowed",
    exceptions.NotAcceptable: "Not acceptable",
    exceptions.Throttled: "Too many requests",
}


def _rollback_atomic_requests() -> None:
    """DRF's `set_rollback`: an error answer rolls back an ATOMIC_REQUESTS transaction.
    Not imported from rest_framework.views, whose import reads the DRF settings that name
    this module (an import cycle)."""
    for connection in connections.all():
        if connection.settings_dict["ATOMIC_REQUESTS"] and connection.in_atomic_block:
            connection.set_rollback(True)


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: every error, expected or not, in the one shape."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        _rollback_atomic_requests()
        return Response(error_body(exc.error, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            error_body(
                "Payload too large",
                f"The request body is larger than the limit of {limit} bytes.",
                {"limit_bytes": limit},
            ),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.ValidationError):
        _rollback_atomic_requests()
        lines = _flatten(exc.detail)
        return Response(
            error_body(
                "Validation failed",
                "Invalid input: " + "; ".join(lines) if lines else "Invalid input.",
                _details(exc.detail),
            ),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, exceptions.APIException):
        _rollback_atomic_requests()
        title = next((t for cls, t in _TITLES.items() if isinstance(exc, cls)), "Request failed")
        details: dict[str, Any] = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            retry_after = max(1, int(exc.wait + 0.999))
            headers["Retry-After"] = str(retry_after)
            details["retry_after"] = retry_after
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            authenticators = getattr(context.get("request"), "authenticators", None) or []
            if authenticators:
                header = authenticators[0].authenticate_header(context["request"])
                if header:
                    headers["WWW-Authenticate"] = header
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return Response(error_body(title, detail, details), status=exc.status_code, headers=headers)

    _rollback_atomic_requests()
    logger.error("Unhandled error in %s", context.get("view"), exc_info=exc)
    return Response(
        error_body("Internal server error", "Something went wrong on our side; it was logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


# Django-level handlers for URLs outside DRF views, so even those answer in the shape.
def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("Not found", f"No route matches {request.path}."), status=404)


def json_server_error(request) -> JsonResponse:
    return JsonResponse(
        error_body("Internal server error", "Something went wrong on our side; it was logged."),
        status=500,
    )


def json_bad_request(request, exception=None) -> JsonResponse:
    return JsonResponse(
        error_body("Bad request", "The request could not be understood."), status=400
    )


def json_permission_denied(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("Forbidden", "You may not access this resource."), status=403)


class LimitedJSONParser(JSONParser):
    """JSON that cannot crash the server with pathological nesting."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from exc


class StrictSerializer(serializers.Serializer):
    """Input serializer that rejects fields it does not know, instead of ignoring them."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


_CLOSED_BODY = "A property not listed here is refused: 400, naming it."


class StrictSerializerSchema(OpenApiSerializerExtension):
    """In the OpenAPI document a StrictSerializer's body is closed (`additionalProperties:
    false`), as the API refuses properties it does not know (400 naming each one).
    Registered by being defined: drf-spectacular finds it for every subclass."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
            if schema.get("description") == inspect.cleandoc(StrictSerializer.__doc__ or ""):
                # inherited, not the body's own: say what it means to a client instead
                schema["description"] = _CLOSED_BODY
        return schema


class PageLimitPagination(PageNumberPagination):
    """The guide's `?page=1&limit=20` paging."""

    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= self.max_page_size:
            raise exceptions.ValidationError(
                {"limit": [f"Must be an integer from 1 to {self.max_page_size}."]}
            )
        return value

    def paginate_queryset(self, queryset, request, view=None):
        raw = request.query_params.get(self.page_query_param, "1")
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise exceptions.ValidationError({"page": ["Must be a positive integer."]})
        return super().paginate_queryset(queryset, request, view)

    def pagination_meta(self) -> dict:
        return {
            "page": self.page.number,
            "limit": self.page.paginator.per_page,
            "total": self.page.paginator.count,
            "pages": self.page.paginator.num_pages,
        }


def page_parameters(items: str) -> list[OpenApiParameter]:
    """The `page` and `limit` query parameters of PageLimitPagination, with the bounds it
    enforces (outside them: 400; a page past the last one: 404)."""
    limit = PageLimitPagination
    return [
        OpenApiParameter(
            "page",
            {"type": "integer", "minimum": 1, "default": 1},
            description="1-based page; past the last page: 404",
        ),
        OpenApiParameter(
            "limit",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": limit.max_page_size,
                "default": limit.page_size,
            },
            description=f"{items} per page, 1-{limit.max_page_size} (default {limit.page_size})",
        ),
    ]


def _window_commands(pipe, current: str, previous: str, timeout: int) -> None:
    """The three commands that count a request (SET NX EX, INCR, GET), added to `pipe`."""
    default = caches["default"]
    key = default.make_and_validate_key(current)
    pipe.set(key, 0, ex=timeout, nx=True)
    pipe.incr(key)
    pipe.get(default.make_and_validate_key(previous))


def _window_counts(current: str, previous: str, timeout: int) -> tuple[int, int]:
    """Count one request in the `current` window and read the `previous` one's count.

    On Redis one pipelined round trip (SET NX EX, INCR, GET); on other caches (the
    in-memory one of development) the same with three calls.
    """
    # `cache` is a proxy (isinstance never sees the backend through it): ask `caches`.
    default = caches["default"]
    backend = getattr(default, "_cache", None)
    if isinstance(default, RedisCache) and backend is not None:
        pipe = backend.get_client(current, write=True).pipeline(transaction=False)
        _window_commands(pipe, current, previous, timeout)
        _, count, before = pipe.execute()
        return int(count), int(before or 0)
    cache.add(current, 0, timeout)
    try:
        count = cache.incr(current)
    except ValueError:  # expired between the two calls
        cache.set(current, 1, timeout)
        count = 1
    return count, int(cache.get(previous) or 0)


class _WindowThrottle(throttling.SimpleRateThrottle):
    """A sliding-window counter that reads windows like `100/15m` (the guide's 15 minutes).

    DRF's SimpleRateThrottle keeps every request's timestamp in one cache value and
    rewrites it on each request, so its cost grows with the limit. This keeps one integer
    per window instead: the estimate is the previous window's count weighted by how much
    of it still overlaps the last `duration` seconds, plus the current window's count
    (the usual sliding-window approximation). A refused request is not counted.

    The rate is read from settings (RATE_LIMIT_<SCOPE>) on each request rather than
    frozen at import, so it can be changed per deployment and per test.
    """

    def get_rate(self):
        return getattr(settings, f"RATE_LIMIT_{self.scope.upper()}")

    def _windows(self, key: str, now: float) -> tuple[str, str]:
        index = int(now // self.duration)
        return f"{key}:{index}", f"{key}:{index - 1}"

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        window = self.duration
        counted = getattr(request, "_counted_along", {}).pop(self.key, None)
        if counted is not None:  # counted in the round trip that checked the held key
            now, count, before = counted
            current, _ = self._windows(self.key, now)
        else:
            now = self.timer()
            current, previous = self._windows(self.key, now)
            try:
                count, before = _window_counts(current, previous, timeout=2 * window + 1)
            except redis.RedisError as exc:
                # Fail open: a cache outage must not turn every request into an error.
                warn_cache_down(exc)
                return True
        elapsed = now - (now // window) * window
        estimate = before * (1 - elapsed / window) + count
        if estimate <= self.num_requests:
            return True
        with contextlib.suppress(redis.RedisError, ValueError):
            cache.decr(current)
        self._wait = max(1.0, window - elapsed)
        return False

    def wait(self):
        return getattr(self, "_wait", None)

    def parse_rate(self, rate):
        if rate is None:
            return (None, None)
        num, period = rate.split("/")
        digits = "".join(ch for ch in period if ch.isdigit()) or "1"
        unit = period[len(digits) :] if period[0].isdigit() else period
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit[0]]
        return int(num), int(digits) * seconds


class PublicRateThrottle(_WindowThrottle):
    """Per client IP on unauthenticated endpoints (signup, public key): 100 / 15 min."""

    scope = "public"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class VerificationRateThrottle(PublicRateThrottle):
    """Per client IP on what every instance polls to verify licenses (public key, JWKS,
    revocation list): its own scope, far more generous than signup's (instances behind one
    NAT share an address), so junk signups never lock instances out of verification."""

    scope = "verification"


def cacheable(request, body: bytes | str, *, content_type: str, max_age: int) -> HttpResponse:
    """A public answer that caches and revalidates: `Cache-Control: public, max-age` and an
    ETag of the body; `If-None-Match` with that ETag answers 304 without the body."""
    raw = body.encode() if isinstance(body, str) else body
    etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    if etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(raw, content_type=content_type)
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={max_age}"
    return response


class CustomerRateThrottle(_WindowThrottle):
    """Per customer for requests made with a customer API key; others are not limited here."""

    scope = "customer"

    def get_cache_key(self, request, view):
        customer = getattr(request.user, "customer", None)
        if customer is None:
            return None
        return self._customer_key(customer.pk)

    def _customer_key(self, customer_pk: int) -> str:
        return self.cache_format % {"scope": self.scope, "ident": customer_pk}

    def count_along(self, request, pipe, customer_pk: int):
        """Add this request's count to `pipe`, the round trip in which a held customer key is
        checked (customers.auth), so the limit costs no round trip of its own; the returned
        function takes the answers (an iterator) and keeps them for `allow_request`."""
        if self.rate is None:
            return lambda answers: None
        key, now = self._customer_key(customer_pk), self.timer()
        current, previous = self._windows(key, now)
        _window_commands(pipe, current, previous, timeout=2 * self.duration + 1)

        def keep(answers) -> None:
            _, count, before = next(answers), next(answers), next(answers)
            if not hasattr(request, "_counted_along"):
                request._counted_along = {}
            request._counted_along[key] = (now, int(count), int(before or 0))

        return keep


class UsageRateThrottle(CustomerRateThrottle):
    """Usage reports per customer: 60 / hour, as the guide's usageLimiter."""

    scope = "usage"


AUTH_RULES = {
    "public": "Public, no credentials; rate-limited per client IP.",
    "staff": "Staff only: `Authorization: Bearer <ADMIN_API_TOKEN or staff token>` or a staff "
    "session. A customer API key gets 403.",
    "customer": "Customer instance only: `X-API-Key`. The key acts for its own customer only.",
    "staff_or_customer": "Staff, or the customer's own `X-API-Key`; another customer's key "
    "gets 404.",
    "stripe": "Stripe only: verified by the `Stripe-Signature` header.",
}


class ErrorBodySerializer(serializers.Serializer):
    """The one error shape (core.errors.error_body)."""

    error = serializers.CharField(help_text="Short title, e.g. `Validation failed`.")
    message = serializers.CharField(help_text="One sentence for a person.")
    details = serializers.DictField(help_text="Per-field errors or facts about the refusal.")


# Which credentials each rule accepts (the security requirements the schema lists) ...
_STAFF = [{"staffToken": []}, {"staffSession": []}]
RULE_SECURITY: dict[str, list] = {
    "public": [],
    "stripe": [],
    "staff": _STAFF,
    "customer": [{"customerApiKey": []}],
    "staff_or_customer": [*_STAFF, {"customerApiKey": []}],
}
# ... and the refusals it can answer, besides what an endpoint adds (409, 410, 503 ...).
RULE_ERRORS: dict[str, tuple[int, ...]] = {
    "public": (400, 429),
    "stripe": (400,),
    "staff": (400, 401, 403),
    "customer": (400, 401, 403, 404, 429),
    "staff_or_customer": (400, 401, 403, 404, 429),
}
_ERROR_DESCRIPTIONS = {
    400: "Invalid input: the error body names each field.",
    401: "No or invalid credentials.",
    402: "Stripe declined (a payment or refund); the message says why.",
    403: "Credentials of the wrong kind (or not allowed to do this).",
    404: "Not found (also another customer's id asked with a customer key).",
    409: "Refused by the current state (the message says which).",
    410: "Gone: the data has been deleted.",
    413: "Request body too large.",
    429: "Too many requests; `Retry-After` says when to try again.",
    503: "A dependency (Stripe, the queue) is unavailable; nothing was changed.",
}


def _error(code: int) -> OpenApiResponse:
    return OpenApiResponse(ErrorBodySerializer, description=_ERROR_DESCRIPTIONS.get(code, ""))


def api_doc(rule: str, summary: str, *, errors: tuple[int, ...] = (), **kwargs):
    """extend_schema with the endpoint's auth rule: stated first in its description, its
    accepted credentials as the operation's security, and its refusals (the rule's, plus
    `errors`) documented with the error shape."""
    description = f"**Auth:** {AUTH_RULES[rule]}"
    if extra := kwargs.pop("description", ""):
        description += f"\n\n{extra}"
    kwargs.setdefault("auth", RULE_SECURITY[rule])
    responses = kwargs.pop("responses", None)
    if isinstance(responses, dict):
        responses = {
            code: _error(code) if isinstance(code, int) and code >= 400 else value
            for code, value in responses.items()
        }
        for code in (*RULE_ERRORS[rule], *errors):
            responses.setdefault(code, _error(code))
    if responses is not None:
        kwargs["responses"] = responses
    return extend_schema(summary=summary, description=description, **kwargs)
