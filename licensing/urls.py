from django.urls import path

from licensing import api

urlpatterns = [
    path("licenses/public-key", api.PublicKeyView.as_view(), name="license-public-key"),
    path("licenses/revocations", api.RevocationListView.as_view(), name="license-revocations"),
    path("licenses/<str:customer_id>", api.LicenseView.as_view(), name="license-detail"),
    path(
        "licenses/<str:customer_id>/history",
        api.LicenseHistoryView.as_view(),
        name="license-history",
    ),
    path(
        "licenses/<str:customer_id>/revoke", api.LicenseRevokeView.as_view(), name="license-revoke"
    ),
]
