from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("researcher/", include("ratings.results_urls")),
    path("", include("ratings.urls")),
]
