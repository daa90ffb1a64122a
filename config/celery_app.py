"""The Celery application. Named celery_app.py so it never shadows the `celery` package."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tenantry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
