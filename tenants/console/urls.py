from django.contrib.auth import views as auth_views
from django.urls import path

from rag.console.urls import urlpatterns as data_plane_patterns

from . import views

app_name = "console"
urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="console/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    path("tenants/", views.tenant_list, name="tenants"),
    # Not under tenants/: any slug (even "new") must stay a tenant's page.
    path("new-tenant/", views.tenant_new, name="tenant-new"),
    path("tenants/<slug:slug>/", views.tenant_detail, name="tenant"),
    path("tenants/<slug:slug>/quotas/", views.tenant_quotas, name="tenant-quotas"),
    path("tenants/<slug:slug>/suspend/", views.tenant_suspend, name="tenant-suspend"),
    path("tenants/<slug:slug>/resume/", views.tenant_resume, name="tenant-resume"),
    path("tenants/<slug:slug>/delete/", views.tenant_delete, name="tenant-delete"),
    path("tenants/<slug:slug>/keys/", views.tenant_keys, name="tenant-keys"),
    path(
        "tenants/<slug:slug>/keys/<uuid:key_id>/revoke/",
        views.tenant_key_revoke,
        name="tenant-key-revoke",
    ),
    *data_plane_patterns,
]
