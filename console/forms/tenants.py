"""Console forms. They check what a person typed; the services decide everything else."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from tenants.models import AnswerPolicy, ApiKeyScope, IsolationMode, TenantQuota
from tenants.services.quotas import QUOTA_FIELDS

# What each isolation mode means, shown next to its radio button on the create form.
MODE_HELP = {
    IsolationMode.POOL: (
        "Shared tables in the platform database, separated by row-level security on a "
        "tenant_id column. Cheapest; best for many small tenants."
    ),
    IsolationMode.BRIDGE: (
        "A schema of its own in the platform database (row-level security too). The data can "
        "be exported, restored or deleted as a unit, at little extra cost."
    ),
    IsolationMode.SILO: (
        "A database of its own, on the platform server or on another server given a DSN. For "
        "large or regulated tenants: own backups, own hardware."
    ),
}

QUOTA_LABELS = {
    "answer_per_hour": ("Answers per hour", "Generated answers and chat completions."),
    "search_per_hour": ("Searches per hour", "Search requests."),
    "ingest_per_hour": ("Document uploads per hour", "Uploads through the API."),
    "embeddings_per_hour": ("Embedding requests per hour", "Calls to /v1/embeddings."),
    "max_tokens_per_response": (
        "Most tokens per answer",
        "Longer requests are clamped to this.",
    ),
    "max_documents": ("Most documents", "New documents beyond this are refused."),
    "max_storage_bytes": ("Most stored bytes", "1 GiB is 1073741824."),
    "max_concurrent_generations": (
        "Generations at once",
        "Answers running at the same time.",
    ),
    "tokens_per_hour": (
        "Tokens per hour, per model",
        "Prompt + generated tokens; an answer reserves its prompt plus max_tokens.",
    ),
    "tokens_per_day": (
        "Tokens per day, per model",
        "The same over a UTC day. Over either budget, answers get 429 until the window turns.",
    ),
}


class TenantCreateForm(forms.Form):
    mode = forms.ChoiceField(
        label="Isolation mode",
        choices=IsolationMode.choices,
        initial=IsolationMode.POOL,
        widget=forms.RadioSelect,
    )
    slug = forms.CharField(
        label="Slug",
        max_length=40,
        help_text="2 to 40 characters: lowercase letters, digits and hyphens, starting with a "
        "letter. It names the tenant in URLs and commands and cannot be changed.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    name = forms.CharField(
        label="Name",
        max_length=200,
        required=False,
        help_text="Optional; the slug is used when empty.",
    )
    silo_dsn = forms.CharField(
        label="Silo server DSN (optional)",
        max_length=500,
        required=False,
        help_text="Silo only: an owner-role URL of another PostgreSQL server, e.g. "
        "postgresql://tenantry_owner:secret@db2.internal:5432/postgres. Empty: the platform "
        "server.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    # The service validates the model; its field names differ from the form's in one place.
    SERVICE_FIELDS = {"isolation_mode": "mode"}

    def add_service_error(self, error: ValidationError) -> None:
        """Attach a ValidationError raised by tenant_create to the matching inputs."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for name, errors in error.error_dict.items():
            field = self.SERVICE_FIELDS.get(name, name)
            self.add_error(field if field in self.fields else None, errors)

    def mode_options(self) -> list[dict]:
        """The radio buttons with their explanations, for a template that renders them."""
        selected = self["mode"].value()
        return [
            {
                "value": value,
                "label": label,
                "help": MODE_HELP[value],
                "id": f"id_mode_{value}",
                "checked": value == selected,
            }
            for value, label in IsolationMode.choices
        ]


def _largest(name: str) -> int:
    """The largest value the quota's column holds (the service refuses anything beyond)."""
    big = TenantQuota._meta.get_field(name).get_internal_type() == "PositiveBigIntegerField"
    return 2**63 - 1 if big else 2**31 - 1


class QuotaForm(forms.Form):
    """One number input per quota in QUOTA_FIELDS."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in QUOTA_FIELDS:
            label, help_text = QUOTA_LABELS.get(name, (name.replace("_", " ").capitalize(), ""))
            self.fields[name] = forms.IntegerField(
                label=label, help_text=help_text, min_value=1, max_value=_largest(name)
            )

    @classmethod
    def for_quota(cls, quota: TenantQuota) -> QuotaForm:
        return cls(initial={name: getattr(quota, name) for name in QUOTA_FIELDS})


class DefaultModelForm(forms.Form):
    """The tenant's default generation model, among the names the view passes (the registry's:
    this module does not know it)."""

    default_model = forms.ChoiceField(
        label="Default model",
        required=False,
        help_text="Answers and chat completions that name no model use it. A request may "
        "still name any model of /v1/models.",
    )

    def __init__(self, *args, names: list[str], platform_default: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_model"].choices = [
            ("", f"Platform default ({platform_default})"),
            *((name, name) for name in names),
        ]


class AnswerPolicyForm(forms.Form):
    answer_policy = forms.ChoiceField(
        label="Answer policy",
        choices=AnswerPolicy.choices,
        help_text="What answers do with sentences the sources do not support: mark them, drop "
        "them (quoting the sources if nothing is left), or never generate and quote the "
        "sources. A request may choose another with `policy`.",
    )


class KeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        required=False,
        help_text="Optional: what the key is for, e.g. “website search”.",
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=ApiKeyScope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="What the key may do. Choose at least one.",
        error_messages={"required": "Choose at least one scope."},
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        min_value=1,
        max_value=3650,
        required=False,
        help_text="Optional; empty for a key that does not expire.",
    )
    tokens_per_hour = forms.IntegerField(
        label="Tokens per hour (this key)",
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        help_text="Optional: the key's own budget per model, on top of the tenant's.",
    )
    tokens_per_day = forms.IntegerField(
        label="Tokens per day (this key)",
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        help_text="Optional: the same over a UTC day. Empty: only the tenant's budgets apply.",
    )


class DeleteConfirmForm(forms.Form):
    """Deleting a tenant asks for its slug to be typed, so it is never one stray click."""

    confirm = forms.CharField(
        label="Type the tenant's slug to confirm",
        max_length=40,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, slug: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.slug = slug
        self.fields[
            "confirm"
        ].help_text = (
            f"This removes every document, chunk and key of the tenant. Type {slug} to confirm."
        )

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip()
        if typed != self.slug:
            raise ValidationError(
                f"That is not this tenant's slug. Type {self.slug} exactly to delete it."
            )
        return typed
