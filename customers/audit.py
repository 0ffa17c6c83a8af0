"""The audit log: one row per state-changing action."""

from __future__ import annotations

from typing import Any

from customers.models import AuditLog, Customer


def actor_of(user) -> str:
    """How a request's principal is named in the audit log."""
    from customers.auth import AdminTokenUser, CustomerPrincipal

    if isinstance(user, CustomerPrincipal):
        return f"api-key:{user.api_key.prefix}"
    if isinstance(user, AdminTokenUser):
        return "staff:admin-api-token"
    if getattr(user, "is_authenticated", False):
        return f"staff:{user.get_username()}"
    return "anonymous"


def audit_record(
    *, action: str, customer: Customer | None = None, actor: str = "system", **metadata: Any
) -> AuditLog:
    return AuditLog.objects.create(
        action=action, customer=customer, actor=actor[:200], metadata=metadata
    )
