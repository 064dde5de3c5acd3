from django.contrib import admin
from django.urls import include, path

from ratings import site_views

urlpatterns = [
    path("", site_views.home, name="home"),
    path("favicon.ico", site_views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("researcher/", include("ratings.results_urls")),
    path("", include("ratings.urls")),
]

# Participants see errors in the study's own plain style (pages in ratings/errors.py).
handler400 = "ratings.errors.bad_request"
handler403 = "ratings.errors.permission_denied"
handler404 = "ratings.errors.not_found"
handler500 = "ratings.errors.server_error"
