from django.contrib import admin
from django.urls import include, path

from generation import health, metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("api/v1/", include("generation.urls")),
    path("", include("generation.page_urls")),
]
