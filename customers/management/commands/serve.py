"""Serve the API and admin for `make run`, with whatever this machine has configured."""

import os
import secrets
import sys

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.supervisor import Supervisor


class Command(BaseCommand):
    help = (
        "Serve API + admin on 127.0.0.1:PORT. With Redis configured (REDIS_URL or REDIS_HOST) "
        "a Celery worker, beat and Flower run too; without, Celery tasks run in-process. "
        "Without STRIPE_SECRET_KEY (and DEBUG on) the local Stripe simulator runs as well. "
        "Several processes run under config.supervisor: a helper that exits is restarted, "
        "and one Ctrl-C stops them all."
    )

    def handle(self, *args, **options):
        port = str(settings.PORT)
        python = sys.executable
        web = f"{python} manage.py runserver 127.0.0.1:{port}"
        processes = {"web": web}
        env = os.environ.copy()
        notes = [f"API and admin on http://127.0.0.1:{port}/ (admin /admin/, docs /api/docs/)"]

        if settings.STRIPE_SIMULATOR:
            sim_port = settings.STRIPE_SIMULATOR_PORT
            # The webhook secret goes through the environment, not the command line.
            env["STRIPE_WEBHOOK_SECRET"] = settings.STRIPE_WEBHOOK_SECRETS[0]
            processes["stripe"] = (
                f"{python} -m stripe_simulator --port {sim_port} "
                f"--webhook-url http://127.0.0.1:{port}/api/webhooks/stripe"
            )
            # The simulator starts empty: the catalogue (prices, meters) is made in it by the
            # same command an operator runs against real Stripe, before the API serves.
            processes["web"] = f"{python} manage.py stripe_setup --wait 30 && exec {web}"
            notes.append(
                f"Stripe: local SIMULATOR on http://127.0.0.1:{sim_port} (no real payments; "
                "test cards 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined)"
            )
        elif not settings.STRIPE_SECRET_KEY:
            notes.append("Stripe: not configured; checkout and refunds answer 503")

        if settings.REDIS_URL:
            self._require_redis()
            # Flower reads its login from the environment: no password on a command line.
            env.setdefault("FLOWER_BASIC_AUTH", f"admin:{secrets.token_urlsafe(9)}")
            flower_port = settings.FLOWER_PORT
            concurrency = settings.CELERY_WORKER_CONCURRENCY
            processes["worker"] = f"{python} -m celery -A config worker -l info -c {concurrency}"
            processes["beat"] = (
                f"{python} -m celery -A config beat -l info "
                "--scheduler django_celery_beat.schedulers:DatabaseScheduler"
            )
            processes["flower"] = (
                f"{python} -m config.flower --address=127.0.0.1 --port={flower_port} "
                "--url_prefix=admin/queues"
            )
            notes.append(
                f"Queue: Celery worker + beat on Redis; Flower on "
                f"http://127.0.0.1:{flower_port}/admin/queues/ (login {env['FLOWER_BASIC_AUTH']})"
            )
        else:
            notes.append("Queue: no REDIS_URL, so Celery tasks run in-process (no worker/Flower)")

        self.stdout.write("\n".join(notes))
        sys.stdout.flush()
        if len(processes) == 1:
            argv = processes["web"].split()
            os.execvpe(argv[0], argv, env)  # noqa: S606 - replaces this process
        supervisor = Supervisor(processes, main="web", env=env, cwd=str(settings.BASE_DIR))
        sys.exit(supervisor.run())

    def _require_redis(self) -> None:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise CommandError(
                f"REDIS_URL is set but Redis does not answer ({exc}). Start Redis, or unset "
                "REDIS_URL to run tasks in-process."
            ) from exc
        finally:
            client.close()
