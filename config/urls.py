from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import health
from config.metrics import MetricsView
from licensing.api import JwksView
from lifecycle.views import email_link
from subscriptions.views import checkout_cancel, checkout_success

admin.site.site_header = "Iotistic Billing"
admin.site.site_title = "Iotistic Billing"

urlpatterns = [
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("admin/", admin.site.urls),
    path("checkout/success", checkout_success, name="checkout-success"),
    path("checkout/cancel", checkout_cancel, name="checkout-cancel"),
    path("links/<str:token>", email_link, name="email-link"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, so the page needs no inline
    # script (Content-Security-Policy: script-src 'self').
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path(".well-known/jwks.json", JwksView.as_view(), name="jwks"),
    # usage first: instances report every few minutes, and each pattern tried before costs a
    # regex (its paths all start with usage/, so no other app's can shadow or be shadowed).
    path("api/", include("usage.urls")),
    # lifecycle before subscriptions: its /api/subscriptions/deactivate etc. come before
    # subscriptions/<customer_id>.
    path("api/", include("lifecycle.urls")),
    path("api/", include("customers.urls")),
    path("api/", include("licensing.urls")),
    path("api/", include("subscriptions.urls")),
    path("api/", include("deployments.urls")),
]

handler400 = "config.api.json_bad_request"
handler403 = "config.api.json_permission_denied"
handler404 = "config.api.json_not_found"
handler500 = "config.api.json_server_error"
