"""/v1: the OpenAI-compatible routes; anything else under /v1 is an OpenAI-shaped 404."""
from django.urls import path, re_path

from . import views

urlpatterns = [
    path("models", views.models, name="openai-models"),
    path("models/<path:model_id>", views.model_detail, name="openai-model"),
    path("chat/completions", views.chat_completions, name="openai-chat-completions"),
    path("completions", views.completions, name="openai-completions"),
    re_path(r"^.*", views.not_found),
]
