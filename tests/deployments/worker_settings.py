"""Settings of the Celery worker that tests/deployments starts as a subprocess.

The project's settings, pointed at what the test run uses: its test database (pytest-django
creates it; the worker must see the rows the test commits), its Redis and its own queue, and
the test's knobs for the simulated backend and the retry backoff, all from TEST_WORKER_*.
"""

import json
import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["TEST_WORKER_DATABASE_NAME"]
CELERY_TASK_ALWAYS_EAGER = False
# Only this test's messages: other tests and a developer's own worker use other queues.
CELERY_TASK_ROUTES = {"deployments.*": {"queue": os.environ["TEST_WORKER_QUEUE"]}}
SIMULATED_DEPLOY_SECONDS = float(os.environ["TEST_WORKER_DEPLOY_SECONDS"])
SIMULATED_DEPLOY_FAULTS = json.loads(os.environ.get("TEST_WORKER_FAULTS", "{}"))
QUEUE_MAX_RETRY = int(os.environ["TEST_WORKER_MAX_RETRY"])
QUEUE_BACKOFF_DELAY_MS = int(os.environ["TEST_WORKER_BACKOFF_MS"])
# How long the worker waits for a result from a pool process that died before calling it
# lost (default 10 s): a test kills pool processes on purpose and needs no grace period.
CELERY_WORKER_LOST_WAIT = 0.5
