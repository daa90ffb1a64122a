"""gunicorn settings for Tenantry.

Threads, not processes: the models are loaded once per process and shared by its threads.
"""

import os

workers = int(os.environ.get("WEB_WORKERS", "1"))
threads = int(os.environ.get("WEB_THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
# Load the app in the master so a role that can bypass RLS stops the server before it binds.
preload_app = True
accesslog = "-"
graceful_timeout = 10
