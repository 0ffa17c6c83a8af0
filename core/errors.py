"""The one application error type and the error body every 4xx and 5xx carries.

Every error leaves the API as
    {"error": "<short title>", "message": "<one sentence for a person>", "details": {...}}
which is the shape of the guide's device-limit 403. Services raise `ApplicationError`;
the API's exception handler (config/api.py) renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any


class ApplicationError(Exception):
    """A business rule said no. Raised by services; rendered by the API's exception handler."""

    def __init__(
        self,
        message: str,
        *,
        error: str = "Request refused",
        status_code: int = HTTPStatus.BAD_REQUEST,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error = error
        self.status_code = int(status_code)
        self.details = dict(details or {})


def error_body(error: str, message: str, details: Mapping[str, Any] | None = None) -> dict:
    return {"error": error, "message": message, "details": dict(details or {})}
