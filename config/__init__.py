"""The Django project. `celery_app` is imported here so `@shared_task` binds to it."""

from .celery_app import app as celery_app

__all__ = ("celery_app",)
