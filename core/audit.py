"""The audit recorder: one row per state-changing action, from any layer.

The table belongs to the customers app (each row may point at a customer), but the
recorder sits at the bottom so that every app can call it without importing an app. It
finds the model the way `django.contrib.auth.get_user_model()` finds the user model: by
the label in settings (AUDIT_LOG_MODEL), resolved through Django's app registry.

Actors are named "staff:<user>", "api-key:<prefix>", "stripe:<event id>", "task:<name>",
"command:<name>" or "system"; the API layer names its principals (customers.auth.actor_of).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models

ACTOR_MAX_LENGTH = 200


def audit_log_model() -> type[models.Model]:
    return apps.get_model(settings.AUDIT_LOG_MODEL, require_ready=True)


def audit_record(
    *, action: str, customer: models.Model | None = None, actor: str = "system", **metadata: Any
) -> models.Model:
    """Write one audit row in the caller's transaction (a rolled-back change leaves none)."""
    return audit_log_model()._default_manager.create(
        action=action, customer=customer, actor=actor[:ACTOR_MAX_LENGTH], metadata=metadata
    )
