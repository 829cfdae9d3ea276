"""The platform's URL map: researcher pages, the method, the admin and account views."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.login_limits import login_limited

from . import health, method

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="annotation:dataset-list"), name="home"),
    # Both password forms count attempts per account and per address (core/login_limits.py);
    # the admin's own login URL (admin:login) is this path, so this pattern serves it.
    path("accounts/login/", login_limited(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/login/", login_limited(admin.site.login)),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("method/", method.method_page, name="method"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view loads Swagger UI's start-up script from ?script instead of writing it into
    # the page, and the template takes its styles from a file: no inline code for the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(
        url_name="api-schema", template_name="api/swagger_ui.html"), name="api-docs"),
    path("api/", include("annotation.api.urls")),
    path("simulations/", include("simulation.urls")),
    path("personas/", include("modeling.urls")),
    path("", include("annotation.urls")),
]
