from django.urls import path

from .views import DocumentDetailView, DocumentListView, SearchView

urlpatterns = [
    path("documents", DocumentListView.as_view(), name="api-documents"),
    path("documents/<uuid:document_id>", DocumentDetailView.as_view(), name="api-document-detail"),
    path("search", SearchView.as_view(), name="api-search"),
]
