from django.urls import path

from .answer import AnswerView
from .views import DocumentDetailView, DocumentListView, SearchView

urlpatterns = [
    path("documents", DocumentListView.as_view(), name="api-documents"),
    path("documents/<uuid:document_id>", DocumentDetailView.as_view(), name="api-document-detail"),
    path("search", SearchView.as_view(), name="api-search"),
    path("answer", AnswerView.as_view(), name="api-answer"),
]
