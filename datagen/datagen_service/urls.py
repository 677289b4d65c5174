"""URL routes of the datagen service: the API under /api/v1/ (no trailing slash), /health for probes."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from series import views

urlpatterns = [
    path("api/v1/points", views.PointsView.as_view(), name="points"),
    path("api/v1/validate", views.ValidateView.as_view(), name="validate"),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start script from this URL (?script): no inline
    # script, so the Content-Security-Policy needs no 'unsafe-inline'.
    path(
        "api/v1/docs",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="series/swagger_ui.html"),
        name="docs",
    ),
    # The liveness probe, at the root like the export server's (compose, the Dockerfile and the tests use it).
    path("health", views.health, name="health"),
]

handler400 = "series.errors.bad_request"
handler404 = "series.errors.not_found"
handler500 = "series.errors.server_error"
