"""Deployment queue endpoints."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import api_doc
from customers.auth import IsStaff
from deployments import selectors


def _count() -> serializers.IntegerField:
    # a field instance per name: DRF binds a field to the one name it is given
    return serializers.IntegerField(min_value=0)


class QueueStatsView(APIView):
    permission_classes = [IsStaff]

    @api_doc(
        "staff",
        "Deployment queue stats",
        operation_id="queue_stats",
        responses={
            200: inline_serializer(
                "QueueStats",
                {
                    "waiting": _count(),
                    "active": _count(),
                    "completed": _count(),
                    "failed": _count(),
                    "delayed": _count(),
                },
            ),
        },
        errors=(503,),
        description=(
            "Counted where Flower counts them: `waiting` is the broker queue plus tasks a "
            "worker has taken but not started, `active` and `delayed` (retries waiting out "
            "their backoff) come from the workers, `completed` and `failed` from the stored "
            "results of the deploy and delete jobs. With no broker (tasks run in-process) the "
            "broker and worker numbers are 0. `503` when the broker cannot be reached."
        ),
    )
    def get(self, request):
        return Response(selectors.queue_stats())
