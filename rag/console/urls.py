"""Data-plane console URLs, mounted in the `console` namespace by tenants/console/urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("playground/", views.playground, name="playground"),
    path("tenants/<slug:slug>/documents/", views.documents, name="tenant-documents"),
    path("tenants/<slug:slug>/usage/", views.usage, name="tenant-usage"),
    path("tenants/<slug:slug>/queries/", views.queries, name="tenant-queries"),
]
