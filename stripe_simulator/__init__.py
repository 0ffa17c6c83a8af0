"""A small stateful stand-in for the Stripe API, spoken to by the real ``stripe`` library.

Used by the test suite and by local development without a STRIPE_SECRET_KEY. Point the library
at it with ``stripe.api_base = handle.base_url`` (or ``StripeClient(key, base_addresses={"api":
handle.base_url})``) and any ``sk_test_`` key. Stdlib + ``stripe`` only: no Django import.
"""

from .simulator import SimulatorHandle, start_simulator
from .state import ApiError
from .webhooks import DEFAULT_WEBHOOK_SECRET, Delivery, sign_payload

__all__ = [
    "DEFAULT_WEBHOOK_SECRET",
    "ApiError",
    "Delivery",
    "SimulatorHandle",
    "sign_payload",
    "start_simulator",
]
