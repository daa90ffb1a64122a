from django.urls import path

from .keys import ApiKeyDetailView, ApiKeyListView
from .usage import UsageView
from .views import CurrentTenantView

urlpatterns = [
    path("tenant", CurrentTenantView.as_view(), name="api-tenant"),
    path("keys", ApiKeyListView.as_view(), name="api-keys"),
    path("keys/<uuid:key_id>", ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("usage", UsageView.as_view(), name="api-usage"),
]
