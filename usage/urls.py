from django.urls import path

from usage import api

urlpatterns = [
    path("usage/report", api.UsageReportView.as_view(), name="usage-report"),
    path("usage/report/batch", api.UsageReportBatchView.as_view(), name="usage-report-batch"),
    path("usage/<str:customer_id>", api.UsageHistoryView.as_view(), name="usage-history"),
    path(
        "usage/<str:customer_id>/consumption",
        api.UsageConsumptionView.as_view(),
        name="usage-consumption",
    ),
]
