"""``python -m stripe_simulator --port 12111 --webhook-url URL --webhook-secret S``

Runs until Ctrl-C. Point the app at it with ``STRIPE_API_BASE=http://127.0.0.1:12111`` and any
``sk_test_`` key. Dev-only controls (no auth, keep the simulator on loopback):
``POST /_simulator/advance_clock`` (``seconds=N``; renews what falls due),
``POST /_simulator/renew`` and ``POST /_simulator/fail_renewal`` (``subscription=sub_...``).

State is kept in ``--state-file`` (default ``.stripe-simulator/state.json`` under the working
directory, or ``STRIPE_SIMULATOR_STATE_FILE``; an empty value keeps it in memory only), so a
restart of ``make run`` still knows its customers, prices and subscriptions. ``--fresh``
starts empty.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from pathlib import Path

from .simulator import start_simulator
from .webhooks import DEFAULT_WEBHOOK_SECRET

logger = logging.getLogger("stripe_simulator")
DEFAULT_STATE_FILE = ".stripe-simulator/state.json"


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
    parser.add_argument(
        "--state-file",
        default=os.environ.get("STRIPE_SIMULATOR_STATE_FILE", DEFAULT_STATE_FILE),
        help="where state is kept between runs ('' keeps it in memory only)",
    )
    parser.add_argument("--fresh", action="store_true", help="forget the saved state first")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    state_file = Path(args.state_file) if args.state_file else None
    if args.fresh and state_file is not None:
        state_file.unlink(missing_ok=True)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
    )
    handle = start_simulator(
        args.port, args.webhook_url, args.webhook_secret, args.host, state_file=state_file
    )
    logger.info(
        "Stripe simulator on %s (webhooks -> %s, state in %s)",
        handle.base_url,
        args.webhook_url or "nowhere",
        state_file or "memory only",
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        logger.info("stopping")
    finally:
        handle.stop()


if __name__ == "__main__":
    main()
