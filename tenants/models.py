"""Control-plane models. They live in the platform database only (`default`)."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Now


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
    # silo on another server: a DSN whose role may create databases there (see README).
    silo_dsn = models.CharField(max_length=500, blank=True, default="")
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

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant_id})"
