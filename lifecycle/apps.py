from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    """No models: installed so Celery finds lifecycle.tasks."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "lifecycle"
