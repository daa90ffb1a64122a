from django.urls import path

from .views import ChatCompletionsView, EmbeddingsView, ModelsView

urlpatterns = [
    path("chat/completions", ChatCompletionsView.as_view(), name="openai-chat-completions"),
    path("embeddings", EmbeddingsView.as_view(), name="openai-embeddings"),
    path("models", ModelsView.as_view(), name="openai-models"),
]
