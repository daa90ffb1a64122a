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
    # Placeholder names the base template links to; the tenants pages replace them.
    path("tenants/", views.home, name="tenants"),
    path("tenants/<slug:slug>/", views.home, name="tenant"),
    path("tenants/<slug:slug>/keys/", views.home, name="tenant-keys"),
    *data_plane_patterns,
]
