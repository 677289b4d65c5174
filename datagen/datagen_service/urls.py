"""URL routes of the datagen service."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from series import views

urlpatterns = [
    path("api/v1/points", views.PointsView.as_view(), name="points"),
    path("api/v1/validate", views.ValidateView.as_view(), name="validate"),
    path("health", views.health, name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
