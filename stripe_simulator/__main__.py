"""``python -m stripe_simulator --port 12111 --webhook-url URL --webhook-secret S``

Runs until Ctrl-C. Point the app at it with ``STRIPE_API_BASE=http://127.0.0.1:12111`` and any
``sk_test_`` key. Dev-only controls (no auth, keep the simulator on loopback):
``POST /_simulator/advance_clock`` (``seconds=N``; renews what falls due),
``POST /_simulator/renew`` and ``POST /_simulator/fail_renewal`` (``subscription=sub_...``).
"""

from __future__ import annotations

import argparse
import logging
import os
import threading

from .simulator import start_simulator
from .webhooks import DEFAULT_WEBHOOK_SECRET

logger = logging.getLogger("stripe_simulator")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_simulator", description="Local Stripe API simulator."
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address; keep it on loopback, there is no real security",
    )
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", default=os.environ.get("STRIPE_SIMULATOR_WEBHOOK_URL"))
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET") or DEFAULT_WEBHOOK_SECRET,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
    )
    handle = start_simulator(args.port, args.webhook_url, args.webhook_secret, args.host)
    logger.info(
        "Stripe simulator on %s (webhooks -> %s)", handle.base_url, args.webhook_url or "nowhere"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        logger.info("stopping")
    finally:
        handle.stop()


if __name__ == "__main__":
    main()
