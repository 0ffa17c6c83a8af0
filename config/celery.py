"""The Celery app: Redis broker, JSON only, late acks, results kept in the database.

Settings live in config/settings.py under the CELERY_ prefix. Without REDIS_URL,
tasks run eagerly in the calling process (development default).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("billing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
