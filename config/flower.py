"""Flower for `make run`, compose and the chart: Celery's Flower, with two changes.

- With `--url_prefix=admin/queues` Flower serves its dashboard at `…/admin/queues/` only and
  answers 404 to the address without the slash, the one people type: that now redirects.
- Flower serves `/metrics` (task and worker names) and `/healthcheck` to anyone, even with
  basic auth on: here they need the same login as the dashboard (probes use a TCP check).

Run it as Flower is run: `python -m config.flower --port=5555 --url_prefix=admin/queues`
(options as for `celery flower`; FLOWER_BASIC_AUTH and other FLOWER_* options are read from
the environment, so no password needs to be on the command line).
"""

from __future__ import annotations

import sys

import flower.command
from celery.bin.celery import main as celery_main
from flower.app import Flower
from flower.views.monitor import Healthcheck, Metrics
from tornado.web import RedirectHandler, authenticated


class AuthenticatedMetrics(Metrics):
    @authenticated
    async def get(self) -> None:
        await super().get()


class AuthenticatedHealthcheck(Healthcheck):
    @authenticated
    async def get(self) -> None:
        await super().get()


class PrefixRedirectingFlower(Flower):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        prefix = (self.options.url_prefix or "").strip("/")
        base = f"/{prefix}" if prefix else ""
        handlers = [
            (rf"{base}/metrics", AuthenticatedMetrics),
            (rf"{base}/healthcheck", AuthenticatedHealthcheck),
        ]
        if prefix:
            handlers.append((base, RedirectHandler, {"url": f"{base}/"}))
        # Host rules added later are tried first; a path they do not match falls through to
        # Flower's own handlers.
        self.add_handlers(r".*", handlers)


def main(argv: list[str]) -> None:
    flower.command.Flower = PrefixRedirectingFlower
    sys.argv = ["celery", "-A", "config", "flower", *argv]
    celery_main()


if __name__ == "__main__":
    main(sys.argv[1:])
