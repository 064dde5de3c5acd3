from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("researcher/", include("ratings.results_urls")),
    path("", include("ratings.urls")),
]

# Participants see errors in the study's own plain style (pages in ratings/errors.py).
handler400 = "ratings.errors.bad_request"
handler403 = "ratings.errors.permission_denied"
handler404 = "ratings.errors.not_found"
handler500 = "ratings.errors.server_error"
