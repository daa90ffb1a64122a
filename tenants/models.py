"""Control-plane models. They live in the platform database only (`default`)."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class IsolationMode(models.TextChoices):
    POOL = "pool", "Pool (shared tables, row-level security)"
    BRIDGE = "bridge", "Bridge (own schema in the platform database)"
    SILO = "silo", "Silo (own database)"


class TenantStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


slug_validator = RegexValidator(
    r"^[a-z][a-z0-9-]{1,39}$",
    "2 to 40 characters: lowercase letters, digits and hyphens, starting with a letter.",
)


class AnswerPolicy(models.TextChoices):
    """What an answer does with sentences its sources do not support (the data plane applies it).

    annotate: keep them and mark them; strict: drop them, and answer extractively if nothing
    supported remains; extractive: no generation, the best supporting sentences quoted.
    """

    ANNOTATE = "annotate", "Annotate unsupported sentences"
    STRICT = "strict", "Drop unsupported sentences"
    EXTRACTIVE = "extractive", "Quote the sources (no generation)"


server_name_validator = RegexValidator(
    r"^[a-z][a-z0-9-]{1,39}$",
    "2 to 40 characters: lowercase letters, digits and hyphens, starting with a letter.",
)


class DataServer(models.Model):
    """A data-plane PostgreSQL server registered with the control plane (`manage.py server_add`).

    Its DSN names the owner role and the database that holds the server's pool tables and
    bridge schemas; silos on it are databases of their own next to that one. The platform
    database is the default server and has no row: a tenant with no server lives there. Only
    the control plane reads the DSN; tenants are moved onto and off a server with
    `tenant_move`, and a server with tenants on it cannot be removed (PROTECT).
    """

    name = models.CharField(max_length=40, unique=True, validators=[server_name_validator])
    dsn = models.CharField(max_length=500)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


DEFAULT_SERVER_NAME = "default"


def default_embedding_backend() -> str:
    from django.conf import settings

    return settings.EMBEDDING_BACKEND


class Tenant(models.Model):
    """A customer of the platform and where its data lives.

    The id is a UUID because it is written into every data-plane row (`tenant_id`) and compared
    by the row-level security policies; it must not be guessable or reused.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    isolation_mode = models.CharField(max_length=10, choices=IsolationMode.choices)
    status = models.CharField(
        max_length=20, choices=TenantStatus.choices, default=TenantStatus.PROVISIONING
    )
    # silo: the database name (on the platform server unless silo_dsn names another server).
    silo_database = models.CharField(max_length=63, blank=True, default="")
    # silo on another server: a DSN whose role may create databases there (see README). The
    # older way to name a server; registered servers (`server`) are the newer one.
    silo_dsn = models.CharField(max_length=500, blank=True, default="")
    # The registered server the placement is on; NULL: the platform database's server.
    server = models.ForeignKey(
        DataServer, null=True, blank=True, on_delete=models.PROTECT, related_name="tenants"
    )
    # Bumped by every move's switch: processes name their aliases with it, so a connection
    # set up for the old placement is never reused for the new one.
    placement_version = models.PositiveIntegerField(default=1)
    answer_policy = models.CharField(
        max_length=12, choices=AnswerPolicy.choices, default=AnswerPolicy.STRICT
    )
    # A name of the generation model registry; blank: the platform's default model.
    default_model = models.CharField(max_length=100, blank=True, default="")
    # The embedding backend (EMBEDDING_BACKEND) its chunks were embedded with: its queries and new
    # documents use it, so vectors of two backends are never compared. New tenants take
    # EMBEDDING_BACKEND; `manage.py reembed` moves a tenant to it.
    embedding_backend = models.CharField(max_length=20, default=default_embedding_backend)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def schema_name(self) -> str:
        """The bridge schema. Derived from the id, not the slug: slugs are user input."""
        return f"tenant_{self.id.hex}"

    @property
    def is_active(self) -> bool:
        return self.status == TenantStatus.ACTIVE

    @property
    def server_name(self) -> str:
        if self.server_id:
            return self.server.name
        return "(dsn)" if self.silo_dsn else DEFAULT_SERVER_NAME


class ApiKeyScope(models.TextChoices):
    INGEST = "ingest", "Ingest documents"
    QUERY = "query", "Search and ask"
    ADMIN = "admin", "Administer the tenant"


class ApiKey(models.Model):
    """A tenant's API key. Only a SHA-256 of the secret is stored.

    The secret has 256 bits of entropy, so a fast hash is enough (a slow KDF only protects
    guessable passwords) and keeps authentication cheap on every request.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=10, choices=ApiKeyScope.choices))
    created_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Token budgets of this key (prompt + generated tokens, per model); NULL: only the
    # tenant's budgets apply.
    tokens_per_hour = models.PositiveBigIntegerField(null=True, blank=True)
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant_id})"

    def state(self, now=None) -> str:
        """ "active", "revoked" or "expired" (at `now`, default the current time): the one
        definition the authentication and the console both use."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return "expired"
        return "active"


class UsageKind(models.TextChoices):
    """What a metered request did. Each kind has its own hourly request quota."""

    ANSWER = "answer", "Answers (generation)"
    SEARCH = "search", "Searches"
    INGEST = "ingest", "Document uploads"
    EMBEDDINGS = "embeddings", "Embeddings"


class TenantQuota(models.Model):
    """A tenant's limits. Created with the defaults of settings.QUOTA_DEFAULTS on first use
    (tenants.services.quotas.quota_get), so every tenant has one without a provisioning step.

    Hourly request limits protect the shared web and model processes from one noisy tenant;
    the token limit bounds the cost of one answer; documents and bytes bound what a tenant may
    store in a placement it shares (pool, bridge) or that the platform pays for (silo);
    concurrent generations bound how much of the in-process model one tenant can hold at once.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="quota")
    answer_per_hour = models.PositiveIntegerField(default=1000)
    search_per_hour = models.PositiveIntegerField(default=5000)
    ingest_per_hour = models.PositiveIntegerField(default=1000)
    embeddings_per_hour = models.PositiveIntegerField(default=5000)
    max_tokens_per_response = models.PositiveIntegerField(default=1024)
    max_documents = models.PositiveIntegerField(default=10000)
    max_storage_bytes = models.PositiveBigIntegerField(default=1024**3)
    max_concurrent_generations = models.PositiveIntegerField(default=2)
    # Prompt + generated tokens per model, per hour and per day (tenants.services.token_budgets).
    tokens_per_hour = models.PositiveBigIntegerField(default=200_000)
    tokens_per_day = models.PositiveBigIntegerField(default=2_000_000)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"quota of {self.tenant_id}"


class RequestCounter(models.Model):
    """Requests of one kind admitted for a tenant in one fixed one-hour window.

    Admission is a single conditional upsert (tenants.services.quotas.quota_admit): the row
    lock PostgreSQL takes on conflict serialises concurrent requests, so no more than the limit
    are ever admitted, across every web process and worker. Windows older than the previous
    hour are deleted when a new window starts; the ledger (UsageRecord) keeps the history.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=UsageKind.choices)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "window_start"], name="request_counter_unique_window"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.kind} {self.window_start:%Y-%m-%d %H}h: {self.count}"


class TokenPeriod(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class TokenCounter(models.Model):
    """Tokens reserved or used by a tenant (api_key NULL) or one of its keys, for one model, in
    one fixed hour or day window. Reserved up front by a conditional upsert like the request
    counters, and the unused part handed back when the answer ends
    (tenants.services.token_budgets)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, null=True, related_name="+")
    model = models.CharField(max_length=100)
    period = models.CharField(max_length=4, choices=TokenPeriod.choices)
    window_start = models.DateTimeField()
    tokens = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "api_key", "model", "period", "window_start"],
                name="token_counter_unique_window",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.model} {self.period} {self.window_start}: {self.tokens}"


class UsageRecord(models.Model):
    """The usage ledger: what a tenant (and which of its keys) used in one hour, by kind.

    One row per (tenant, key, hour, kind, model), incremented by an upsert, so the ledger grows with
    hours of activity, not with requests. A NULL key (a management command, a key since deleted)
    is one bucket: the unique constraint treats NULLs as equal so the upsert finds it.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_records")
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    hour = models.DateTimeField()
    kind = models.CharField(max_length=12, choices=UsageKind.choices)
    # The generation model of answers ("" for kinds that use none): metering is per model.
    model = models.CharField(max_length=100, blank=True, default="")
    requests = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    embedding_tokens = models.PositiveBigIntegerField(default=0)
    generation_ms = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-hour", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "api_key", "hour", "kind", "model"],
                name="usage_record_unique_bucket",
                nulls_distinct=False,
            ),
        ]
        indexes = [models.Index(fields=["tenant", "hour"], name="usage_record_tenant_hour")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.kind} {self.hour:%Y-%m-%d %H}h"


class MovePhase(models.TextChoices):
    """The phases of a live move, in order (tenants/services/moves/protocol.py runs them)."""

    PREPARE = "prepare", "Prepare the target, capture writes"
    COPY = "copy", "Copy the rows"
    CATCH_UP = "catch_up", "Apply the writes made meanwhile"
    FENCE = "fence", "Fence writes, apply the last ones, verify"
    SWITCH = "switch", "Switch the placement"
    CLEANUP = "cleanup", "Remove the source"
    DONE = "done", "Done"


class MoveState(models.TextChoices):
    RUNNING = "running", "Running"
    KEPT = "kept", "Switched; the source is kept until --finish"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled and rolled back"
    FAILED = "failed", "Failed and rolled back"


ACTIVE_MOVE_STATES = (MoveState.RUNNING, MoveState.KEPT)


class TenantMove(models.Model):
    """One live move of a tenant's data plane to another placement (mode and server).

    Persisted phase by phase in the control plane, so a run killed at any point (`kill -9`
    included) is picked up by the next run: before the switch every phase can be repeated
    or rolled back; after it only the clean-up is left. The source placement is recorded
    here because the tenant row points at the target from the switch on. `runner` and
    `heartbeat_at` tell a live run from a dead one.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="moves")
    source_mode = models.CharField(max_length=10, choices=IsolationMode.choices)
    source_server = models.ForeignKey(
        DataServer, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_database = models.CharField(max_length=63, blank=True, default="")
    source_dsn = models.CharField(max_length=500, blank=True, default="")
    source_version = models.PositiveIntegerField(default=1)
    target_mode = models.CharField(max_length=10, choices=IsolationMode.choices)
    target_server = models.ForeignKey(
        DataServer, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    target_database = models.CharField(max_length=63, blank=True, default="")
    phase = models.CharField(max_length=10, choices=MovePhase.choices, default=MovePhase.PREPARE)
    state = models.CharField(max_length=10, choices=MoveState.choices, default=MoveState.RUNNING)
    keep_source = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    # {"tables": {table: {"copied": n, "total": n}}, "captured": n, "applied": n}
    progress = models.JSONField(default=dict, blank=True)
    # Longest time writes were held, in milliseconds (the fence).
    fence_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    runner = models.CharField(max_length=200, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(state__in=["running", "kept"]),
                name="tenant_move_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"move of {self.tenant_id}: {self.source_mode} -> {self.target_mode} ({self.phase})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_MOVE_STATES
