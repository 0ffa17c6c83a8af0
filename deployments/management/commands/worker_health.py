"""Worker health check: fails when no worker has run the heartbeat task lately.

The worker's liveness probe (charts/billing, compose): `celery inspect ping` answers even
from a worker whose pool is wedged, so this asks instead whether a worker consumed a task
in the last WORKER_HEARTBEAT_STALE_SECONDS.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.health import worker_heartbeat_age


class Command(BaseCommand):
    help = (
        "Exit 0 if a worker ran the heartbeat task (sent by beat every 30 s) within "
        "WORKER_HEARTBEAT_STALE_SECONDS, else exit 1: the worker health check."
    )

    def handle(self, *args, **options):
        age = worker_heartbeat_age()
        limit = settings.WORKER_HEARTBEAT_STALE_SECONDS
        if age is None:
            raise CommandError("No worker heartbeat yet: no worker has consumed one.")
        if age > limit:
            raise CommandError(
                f"Worker heartbeat is {age:.0f} s old (limit {limit} s): workers are not consuming."
            )
        self.stdout.write(f"Workers consuming: heartbeat {age:.0f} s old.")
