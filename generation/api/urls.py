"""The native API's routes, mounted at /api/v1/."""
from django.urls import path

from . import views

urlpatterns = [
    path("generations", views.generation_create, name="api-generation-create"),
    path("generations/<uuid:request_id>/cancel", views.generation_cancel, name="api-generation-cancel"),
    path("generations/<uuid:request_id>/events", views.generation_events, name="api-generation-events"),
]
