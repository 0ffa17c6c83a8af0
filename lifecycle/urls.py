from django.urls import path

from lifecycle import api

urlpatterns = [
    # Offboarding lives under the guide's /api/subscriptions/ paths; listed before the
    # subscriptions app's `subscriptions/<customer_id>` (config/urls.py includes
    # these first) so they are not taken for ids.
    path("subscriptions/deactivate", api.DeactivateView.as_view(), name="deactivate"),
    path("subscriptions/reactivate", api.ReactivateView.as_view(), name="reactivate"),
    path(
        "subscriptions/scheduled-deletions",
        api.ScheduledDeletionsView.as_view(),
        name="scheduled-deletions",
    ),
    path(
        "admin/execute-deletions",
        api.ExecuteDeletionsView.as_view(),
        name="execute-deletions",
    ),
]
