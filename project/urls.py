from django.contrib import admin
from django.urls import include, path, re_path

from generation import health, metrics
from generation.openai_api.views import not_found as openai_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("api/v1/", include("generation.urls")),
    path("v1/", include("generation.openai_api.urls")),
    re_path(r"^v1$", openai_not_found),
    path("", include("generation.page_urls")),
]

handler400 = "project.errors.bad_request"
handler403 = "project.errors.permission_denied"
handler404 = "project.errors.not_found"
handler500 = "project.errors.server_error"
