"""The root URLconf: admin, probes, metrics, the two APIs and the editor pages; JSON error
handlers for Django's own 400/403/404/500 under the APIs."""
from django.contrib import admin
from django.urls import include, path, re_path

from generation.openai_api.views import not_found as openai_not_found
from generation.ops import health, prometheus

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", prometheus.metrics_view, name="metrics"),
    path("api/v1/", include("generation.api.urls")),
    path("v1/", include("generation.openai_api.urls")),
    re_path(r"^v1$", openai_not_found),
    path("", include("generation.editor.urls")),
]

handler400 = "project.errors.bad_request"
handler403 = "project.errors.permission_denied"
handler404 = "project.errors.not_found"
handler500 = "project.errors.server_error"
