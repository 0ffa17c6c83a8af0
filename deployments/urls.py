from django.urls import path

from deployments import api

urlpatterns = [
    path("queue/stats", api.QueueStatsView.as_view(), name="queue-stats"),
]
