"""Console forms for the data plane. They validate input; services do the work."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from tenants.models import AnswerPolicy, Tenant, TenantStatus


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.Field):
    """Several files in one field. Each file is judged by `document_submit` on its own, so
    one empty or unsupported file is reported without refusing the others."""

    widget = MultipleFileInput

    def clean(self, value):
        files = [f for f in (value or []) if isinstance(f, UploadedFile)]
        if self.required and not files:
            raise forms.ValidationError("Choose at least one file.", code="required")
        return files


class DocumentUploadForm(forms.Form):
    files = MultipleFileField(label="Files")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["files"].help_text = (
            "Plain text, Markdown, HTML or PDF (text layer); several at once, up to "
            f"{filesizeformat(settings.RAG_MAX_UPLOAD_BYTES)} each."
        )


class AskForm(forms.Form):
    question = forms.CharField(
        label="Question", max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    k = forms.IntegerField(
        label="Sources (k)",
        min_value=1,
        max_value=20,
        initial=5,
        help_text="How many passages to retrieve (1-20).",
    )
    max_tokens = forms.IntegerField(
        label="Max tokens",
        min_value=1,
        required=False,
        initial=settings.ANSWER_DEFAULT_MAX_TOKENS,
        help_text="Longest answer; clamped to the tenant's quota.",
    )
    policy = forms.ChoiceField(
        label="Answer policy",
        required=False,
        choices=[("", "The tenant's"), *((p.value, p.label) for p in AnswerPolicy)],
        help_text="Mark, drop or avoid sentences the sources do not support.",
    )


class PlaygroundForm(AskForm):
    """The playground's form: AskForm plus the tenant (active tenants only)."""

    tenant = forms.ModelChoiceField(
        label="Tenant",
        queryset=Tenant.objects.filter(status=TenantStatus.ACTIVE),
        to_field_name="slug",
        empty_label=None,
    )
    field_order = ["tenant", "question", "k", "max_tokens"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].label_from_instance = lambda t: (
            f"{t.name} ({t.slug}, {t.isolation_mode})"
        )
