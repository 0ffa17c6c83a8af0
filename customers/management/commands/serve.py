"""Serve the API and admin for `make run`, with or without Redis."""

import os
import secrets
import shutil
import sys

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Serve API + admin on 127.0.0.1:PORT. With Redis configured (REDIS_URL or REDIS_HOST) "
        "it also runs a Celery worker, beat and Flower under honcho; without, Celery tasks run "
        "in-process and only the web server starts."
    )

    def handle(self, *args, **options):
        port = str(settings.PORT)
        if not settings.REDIS_URL:
            self.stdout.write(
                "No REDIS_URL: Celery tasks run in-process (eager); no worker, beat or Flower.\n"
                f"API and admin on http://127.0.0.1:{port}/ (admin at /admin/, docs at /api/docs/)"
            )
            self._exec([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"])
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
        env = os.environ.copy()
        env.setdefault("PORT", port)
        env.setdefault("QUEUE_CONCURRENCY", str(settings.CELERY_WORKER_CONCURRENCY))
        env.setdefault("FLOWER_PORT", "5555")
        if "FLOWER_BASIC_AUTH" not in env:
            env["FLOWER_BASIC_AUTH"] = f"admin:{secrets.token_urlsafe(9)}"
            self.stdout.write(f"Flower login (this run only): {env['FLOWER_BASIC_AUTH']}")
        bin_dir = os.path.dirname(sys.executable)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        self.stdout.write(
            f"API and admin on http://127.0.0.1:{port}/ ; Flower on "
            f"http://127.0.0.1:{env['FLOWER_PORT']}/admin/queues"
        )
        honcho = shutil.which("honcho", path=env["PATH"]) or "honcho"
        self._exec([honcho, "-f", "Procfile.dev", "start"], env=env)

    def _exec(self, argv, env=None):
        sys.stdout.flush()
        os.execvpe(argv[0], argv, env or os.environ)  # noqa: S606 - replaces this process
