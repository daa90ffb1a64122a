"""Console URLs (namespace `console`): the control plane's tenants and keys, and each
tenant's data plane (documents, usage, queries, evaluation, the playground)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from .views import documents, evaluation, keys, moves, overview, playground, queries, tenants, usage

app_name = "console"
urlpatterns = [
    path("", overview.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="console/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    path("tenants/", tenants.tenant_list, name="tenants"),
    # Not under tenants/: any slug (even "new") must stay a tenant's page.
    path("new-tenant/", tenants.tenant_new, name="tenant-new"),
    path("tenants/<slug:slug>/", tenants.tenant_detail, name="tenant"),
    path("tenants/<slug:slug>/quotas/", tenants.tenant_quotas, name="tenant-quotas"),
    path("tenants/<slug:slug>/model/", tenants.tenant_model, name="tenant-model"),
    path(
        "tenants/<slug:slug>/answer-policy/",
        tenants.tenant_answer_policy,
        name="tenant-answer-policy",
    ),
    path("tenants/<slug:slug>/suspend/", tenants.tenant_suspend, name="tenant-suspend"),
    path("tenants/<slug:slug>/resume/", tenants.tenant_resume, name="tenant-resume"),
    path("tenants/<slug:slug>/delete/", tenants.tenant_delete, name="tenant-delete"),
    path("tenants/<slug:slug>/placement/", moves.placement, name="tenant-placement"),
    path("tenants/<slug:slug>/placement/move/", moves.move_begin, name="tenant-move"),
    path(
        "tenants/<slug:slug>/moves/<uuid:move_id>/",
        moves.move_progress,
        name="tenant-move-progress",
    ),
    path(
        "tenants/<slug:slug>/moves/<uuid:move_id>/cancel/",
        moves.move_stop,
        name="tenant-move-cancel",
    ),
    path(
        "tenants/<slug:slug>/moves/<uuid:move_id>/finish/",
        moves.move_finish,
        name="tenant-move-finish",
    ),
    path(
        "tenants/<slug:slug>/moves/<uuid:move_id>/resume/",
        moves.move_resume,
        name="tenant-move-resume",
    ),
    path("tenants/<slug:slug>/keys/", keys.tenant_keys, name="tenant-keys"),
    path(
        "tenants/<slug:slug>/keys/<uuid:key_id>/revoke/",
        keys.tenant_key_revoke,
        name="tenant-key-revoke",
    ),
    # A tenant's data plane
    path("playground/", playground.playground, name="playground"),
    path("playground/<slug:slug>/ask/", playground.ask, name="playground-ask"),
    path("tenants/<slug:slug>/documents/", documents.documents, name="tenant-documents"),
    path(
        "tenants/<slug:slug>/documents/upload/",
        documents.document_upload,
        name="tenant-document-upload",
    ),
    path(
        "tenants/<slug:slug>/documents/<uuid:document_id>/row/",
        documents.document_row,
        name="tenant-document-row",
    ),
    path(
        "tenants/<slug:slug>/documents/<uuid:document_id>/delete/",
        documents.document_remove,
        name="tenant-document-delete",
    ),
    path("tenants/<slug:slug>/usage/", usage.usage, name="tenant-usage"),
    path("tenants/<slug:slug>/queries/", queries.queries, name="tenant-queries"),
    path("tenants/<slug:slug>/chunks/<int:chunk_id>/", queries.chunk, name="tenant-chunk"),
    path("tenants/<slug:slug>/evaluation/", evaluation.evaluation, name="tenant-evaluation"),
    path(
        "tenants/<slug:slug>/evaluation/import/",
        evaluation.evaluation_import,
        name="tenant-evaluation-import",
    ),
    path(
        "tenants/<slug:slug>/evaluation/sets/<int:set_id>/run/",
        evaluation.evaluation_run,
        name="tenant-evaluation-run",
    ),
    path(
        "tenants/<slug:slug>/evaluation/runs/<int:run_id>/row/",
        evaluation.evaluation_run_row,
        name="tenant-evaluation-run-row",
    ),
]
