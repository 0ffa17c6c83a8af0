"""Usage endpoints: instances report (one or a batch); staff and the customer read history
and consumption."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import PageLimitPagination, UsageRateThrottle, api_doc, page_parameters
from core.errors import ApplicationError
from customers.auth import IsCustomerInstance, IsStaffOrCustomerInstance, customer_get_for
from usage import selectors, services
from usage.serializers import (
    HISTORY_DEFAULT_DAYS,
    HISTORY_MAX_DAYS,
    MAX_BATCH_BYTES,
    MAX_BATCH_REPORTS,
    MAX_REPORT_BYTES,
    BatchAcceptedOut,
    BatchInput,
    HistoryQuery,
    ReportAcceptedOut,
    ReportInput,
    UsageConsumptionOut,
    UsageHistoryOut,
    batch_validate,
    consumption_out,
    instance_out,
    report_out,
    report_outcome_out,
    report_validate,
    totals_out,
)

_RULE = (
    "Counters are cumulative since the instance started; send a `report_id` (UUID, reused on "
    "retries) and `reported_at`. A repeat of a stored report answers 200 with "
    '`"duplicate": true` and changes nothing.'
)


def _limit_body(request, limit: int) -> None:
    """Refuse a body over `limit` bytes before it is read or parsed."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise ApplicationError(
            f"The request body is larger than the limit of {limit} bytes.",
            error="Payload too large",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            details={"limit_bytes": limit},
        )


class _Counted:
    """The window's reports for the paginator, with their count already known (the history
    summed it), so paging does not count up to a month of reports again."""

    ordered = True

    def __init__(self, reports, count: int) -> None:
        self._reports, self._count = reports, count

    def count(self) -> int:
        return self._count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        return self._reports[index]


class UsageReportView(APIView):
    permission_classes = [IsCustomerInstance]
    throttle_classes = [UsageRateThrottle]

    @api_doc(
        "customer",
        "Report one instance's usage",
        request=ReportInput,
        responses={
            201: ReportAcceptedOut,
            200: OpenApiResponse(ReportAcceptedOut, description="A repeat: nothing changed."),
        },
        errors=(413,),
        description=f"{_RULE} `customer_id` must be the key's own customer (else 403). "
        f"Body at most {MAX_REPORT_BYTES} bytes. Limited per customer (`RATE_LIMIT_USAGE`).",
    )
    def post(self, request):
        _limit_body(request, MAX_REPORT_BYTES)
        report = report_validate(request)
        outcome = services.usage_report_record(customer=request.user.customer, report=report)
        return Response(
            {"accepted": True, **report_outcome_out(outcome)},
            status=status.HTTP_200_OK if outcome.duplicate else status.HTTP_201_CREATED,
        )


class UsageReportBatchView(APIView):
    permission_classes = [IsCustomerInstance]
    throttle_classes = [UsageRateThrottle]

    @api_doc(
        "customer",
        "Report many snapshots at once (an instance catching up)",
        request=BatchInput,
        responses={200: BatchAcceptedOut},
        errors=(413,),
        description=f'`{{"reports": [...]}}`, 1 to {MAX_BATCH_REPORTS} reports, each with '
        f"`reported_at`, stored with one insert; counts as one request against the rate "
        f"limit. {_RULE} Any invalid report refuses the whole batch (400, details per index).",
    )
    def post(self, request):
        _limit_body(request, MAX_BATCH_BYTES)
        outcomes = services.usage_reports_record(
            customer=request.user.customer, reports=batch_validate(request)
        )
        duplicates = sum(o.duplicate for o in outcomes)
        return Response(
            {
                "accepted": True,
                "received": len(outcomes),
                "inserted": len(outcomes) - duplicates,
                "duplicates": duplicates,
                "results": [report_outcome_out(o) for o in outcomes],
            }
        )


class UsageHistoryView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Usage history: raw reports, a daily series and totals",
        parameters=[
            OpenApiParameter(
                "days",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": HISTORY_MAX_DAYS,
                    "default": HISTORY_DEFAULT_DAYS,
                },
                description=f"UTC days up to today, 1-{HISTORY_MAX_DAYS} "
                f"(default {HISTORY_DEFAULT_DAYS})",
            ),
            *page_parameters("reports"),
        ],
        responses={200: UsageHistoryOut},
        description="Reports older than the raw retention are rolled up into the daily "
        "series and no longer listed one by one. `instances` says, per instance with raw "
        "reports in the window, which meters it reports (`devices`, `mqtt`, `http`, "
        "`storage`) and which fields it never sent (not measured, counted as none).",
    )
    def get(self, request, customer_id: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        query = HistoryQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        days = query.validated_data["days"]
        history = selectors.usage_history(customer=customer, days=days)
        paginator = PageLimitPagination()
        reports = _Counted(history.reports, history.report_count)
        page = paginator.paginate_queryset(reports, request, view=self)
        return Response(
            {
                "customer_id": customer.customer_id,
                "days": days,
                "from": history.first_day.isoformat(),
                "to": (history.end_day - timedelta(days=1)).isoformat(),
                "totals": totals_out(history.totals),
                "daily": [{"date": day.isoformat(), **totals_out(t)} for day, t in history.daily],
                "instances": [instance_out(i) for i in history.instances],
                "reports": [report_out(r) for r in page],
                "pagination": paginator.pagination_meta(),
            }
        )


class UsageConsumptionView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Consumption and overage in the current billing period",
        responses={200: UsageConsumptionOut},
        description="Per meter: used, allowance, overage and its amount in integer cents "
        "(ROUND_HALF_UP per meter). The period is the subscription's while active or past "
        "due, else the calendar month (UTC), metered in whole UTC days.",
    )
    def get(self, request, customer_id: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        return Response(consumption_out(selectors.usage_consumption(customer=customer)))
