from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/functions/function/", permanent=False)),
    path("admin/", admin.site.urls),
]

# A database connection error raised in a middleware answers 503, not 500 (functions/database_away.py).
handler500 = "functions.database_away.server_error"
