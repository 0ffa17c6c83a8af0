from django.urls import path

from customers import api, offboarding_api

urlpatterns = [
    # Offboarding lives under the guide's /api/subscriptions/ paths; listed before the
    # subscriptions app's `subscriptions/<customer_id>` so they are not taken for ids.
    path("subscriptions/deactivate", offboarding_api.DeactivateView.as_view(), name="deactivate"),
    path("subscriptions/reactivate", offboarding_api.ReactivateView.as_view(), name="reactivate"),
    path(
        "subscriptions/scheduled-deletions",
        offboarding_api.ScheduledDeletionsView.as_view(),
        name="scheduled-deletions",
    ),
    path(
        "admin/execute-deletions",
        offboarding_api.ExecuteDeletionsView.as_view(),
        name="execute-deletions",
    ),
    path("customers/signup", api.SignupView.as_view(), name="customer-signup"),
    path("customers", api.CustomerListCreateView.as_view(), name="customer-list"),
    path("customers/<str:customer_id>", api.CustomerDetailView.as_view(), name="customer-detail"),
    path(
        "customers/<str:customer_id>/api-keys",
        api.ApiKeyListCreateView.as_view(),
        name="api-key-list",
    ),
    path(
        "customers/<str:customer_id>/api-keys/rotate",
        api.ApiKeyRotateView.as_view(),
        name="api-key-rotate",
    ),
    path(
        "customers/<str:customer_id>/api-keys/<str:prefix>",
        api.ApiKeyDetailView.as_view(),
        name="api-key-detail",
    ),
]
