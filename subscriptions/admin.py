"""Subscriptions, refunds and the Stripe webhook inbox in the back-office: read-only, with the
money operations (refund, cancel, keep, change plan) and the replay of a Stripe event, and the
overview on the admin index."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from core import plans
from core.audit import audit_record
from core.errors import ApplicationError
from customers.admin import (
    PERM_CANCEL,
    PERM_CHANGE_PLAN,
    PERM_REFUND,
    PERM_REPLAY_EVENT,
    Operation,
    OperationsMixin,
    Outcome,
    Preview,
    ReadOnlyAdminMixin,
    TokenForm,
    cents_of,
    dollars,
)
from customers.auth import actor_of
from customers.models import Customer
from deployments.models import Deployment
from lifecycle import plan_changes, staff_operations
from subscriptions import mirror, refunds
from subscriptions.models import Payment, Refund, StripeEvent, Subscription
from subscriptions.webhooks import stripe_event_process

RULES = [
    ("prorated", "Pro-rated: the unused part of the period"),
    ("remaining", "All that is still refundable"),
    ("amount", "An amount"),
]


def _paid(subscription: Subscription) -> str | None:
    if not subscription.stripe_subscription_id or subscription.status == "canceled":
        return f"{subscription.customer.customer_id} has no paid subscription."
    return None


def _cancellable(subscription: Subscription) -> str | None:
    """Why the subscription cannot be canceled (None: it can): a paid one through Stripe, or
    the signup trial, which the service cancels on its own."""
    if subscription.status == Subscription.Status.CANCELED:
        return f"{subscription.customer.customer_id} is already canceled."
    if subscription.stripe_subscription_id or subscription.status == Subscription.Status.TRIALING:
        return None
    return f"{subscription.customer.customer_id} has no subscription to cancel."


def _refund_facts(customer: Customer) -> list[tuple[str, object]]:
    preview = staff_operations.refund_preview(customer=customer)
    if preview is None:
        return [("Refundable", "nothing: no payment in this period (trial or unpaid)")]
    return [
        *(
            (
                "Payment it draws on",
                f"{dollars(part.payment.amount)} on {part.payment.stripe_invoice_id} "
                f"({part.payment.invoice_created_at:%Y-%m-%d}), {dollars(part.left)} left",
            )
            for part in preview.parts
        ),
        ("Paid in this period", dollars(preview.amount_paid)),
        ("Already refunded", dollars(preview.already_refunded)),
        ("Period", f"{preview.period_start:%Y-%m-%d %H:%M} to {preview.period_end:%Y-%m-%d %H:%M}")
        if preview.period_start and preview.period_end
        else ("Period", "-"),
        ("Pro-rated refund now", dollars(preview.prorated)),
        ("Maximum refund", dollars(preview.maximum)),
    ]


class RefundForm(TokenForm):
    rule = forms.ChoiceField(choices=RULES, widget=forms.RadioSelect, initial="prorated")
    amount = forms.DecimalField(
        required=False, min_value=Decimal("0.01"), decimal_places=2, label="Amount (USD)"
    )
    reason = forms.ChoiceField(choices=Refund.Reason.choices)
    description = forms.CharField(max_length=500, required=False)

    def clean(self):
        data = super().clean()
        if data.get("rule") == "amount" and data.get("amount") is None:
            self.add_error("amount", "Give the amount to refund.")
        return data


def _refund_message(rows: list[Refund], duplicate: bool) -> Outcome:
    amount = dollars(sum(row.amount for row in rows))
    if duplicate:
        return Outcome(f"This refund was already made: {amount}.", messages.WARNING)
    issued, why = refunds.refund_outcome(rows)
    if issued:
        return Outcome(f"Refund of {amount} issued (succeeded).")
    return Outcome(f"Refund of {amount} not complete: {why}", messages.WARNING)


class IssueRefund(Operation):
    slug, title, permission, button = "refund", "Refund", PERM_REFUND, "Issue the refund"
    form_class = RefundForm

    def unavailable(self, obj):
        preview = staff_operations.refund_preview(customer=obj.customer)
        if preview is None:
            return f"{obj.customer.customer_id} has no payment in this period to refund."
        if not preview.refundable:
            return f"The payment of {obj.customer.customer_id} is already fully refunded."
        return None

    def preview(self, obj):
        return Preview(
            facts=_refund_facts(obj.customer),
            effects=[
                "Stripe refunds the amount to the card of the payment.",
                "The subscription is not changed.",
            ],
        )

    def perform(self, request, obj, data):
        rule = data["rule"]
        result = refunds.refund_request(
            customer=obj.customer,
            reason=data["reason"],
            amount=cents_of(data["amount"]) if rule == "amount" else None,
            use_prorated=rule == "prorated",
            description=data["description"],
            client_key=f"admin:{data['request_token']}",
            actor=actor_of(request.user),
        )
        rows = list(result.refunds)
        if not result.duplicate:
            audit_record(
                action="refund.issued",
                customer=obj.customer,
                actor=actor_of(request.user),
                refund=rows[0].pk,
                refunds=[row.pk for row in rows],
                amount=result.amount,
                status=rows[0].status,
                rule=result.rule,
            )
        return _refund_message(rows, result.duplicate)


class CancelAtPeriodEnd(Operation):
    slug, title, permission = "cancel-at-period-end", "Cancel at period end", PERM_CANCEL
    button = "Cancel at period end"

    def unavailable(self, obj):
        if reason := _cancellable(obj):
            return reason
        return "It already cancels at the period end." if obj.cancel_at_period_end else None

    def preview(self, obj):
        trial = not obj.stripe_subscription_id
        return Preview(
            facts=[
                ("Plan", obj.plan),
                (
                    "Trial ends" if trial else "Period ends",
                    obj.trial_ends_at if trial else obj.current_period_end,
                ),
            ],
            effects=[
                "The trial ends then without converting to a paid plan."
                if trial
                else "Stripe stops renewing the subscription; the customer keeps access until "
                "the period ends.",
                "The customer is emailed.",
            ],
        )

    def perform(self, request, obj, data):
        plan_changes.subscription_cancel_at_period_end(
            customer=obj.customer, cancel=True, actor=actor_of(request.user)
        )
        return Outcome(f"{obj.customer.customer_id} cancels at the end of the period.")


class Keep(Operation):
    slug, title, permission, button = "keep", "Keep (undo the cancellation)", PERM_CANCEL, "Keep"

    def unavailable(self, obj):
        if reason := _cancellable(obj):
            return reason
        return None if obj.cancel_at_period_end else "It is not set to cancel."

    def preview(self, obj):
        return Preview(
            facts=[("Period ends", obj.current_period_end or obj.trial_ends_at)],
            effects=["The subscription (or trial) goes on at the period end as before."],
        )

    def perform(self, request, obj, data):
        plan_changes.subscription_cancel_at_period_end(
            customer=obj.customer, cancel=False, actor=actor_of(request.user)
        )
        return Outcome(f"{obj.customer.customer_id} keeps its subscription.")


class CancelNowForm(TokenForm):
    issue_refund = forms.BooleanField(required=False)
    rule = forms.ChoiceField(
        choices=[RULES[0], RULES[2]], widget=forms.RadioSelect, initial="prorated"
    )
    amount = forms.DecimalField(
        required=False, min_value=Decimal("0.01"), decimal_places=2, label="Amount (USD)"
    )
    reason = forms.ChoiceField(choices=Refund.Reason.choices)

    def clean(self):
        data = super().clean()
        if data.get("issue_refund") and data.get("rule") == "amount" and not data.get("amount"):
            self.add_error("amount", "Give the amount to refund.")
        return data


class CancelNow(Operation):
    slug, title, permission, danger = "cancel-now", "Cancel now", PERM_CANCEL, True
    button = "Cancel now"
    form_class = CancelNowForm

    def unavailable(self, obj):
        return _cancellable(obj)

    def preview(self, obj):
        return Preview(
            facts=[("Plan", obj.plan), *_refund_facts(obj.customer)],
            effects=[
                "Stripe cancels the subscription at once; the license is revoked: access ends now.",
                "With a refund: it is checked first, and nothing is canceled if it would be "
                "refused; one that Stripe then does not complete is reported.",
                "The customer is emailed.",
            ],
        )

    def perform(self, request, obj, data):
        refund = None
        if data["issue_refund"]:
            refund = plan_changes.RefundOnCancel(
                reason=data["reason"],
                amount=cents_of(data["amount"]) if data["rule"] == "amount" else None,
                idempotency_key=f"admin:{data['request_token']}",
            )
        cancellation = plan_changes.subscription_cancel_immediately(
            customer=obj.customer, actor=actor_of(request.user), refund=refund
        )
        message = f"{obj.customer.customer_id} canceled now"
        if refund is None:
            return Outcome(f"{message}, no refund.")
        amount = dollars(sum(row.amount for row in cancellation.refunds))
        if cancellation.refund_issued:
            return Outcome(f"{message}, refund {amount} issued.")
        return Outcome(
            f"{message}; the refund is not issued: {cancellation.refund_reason}", messages.WARNING
        )


class ChangePlanForm(forms.Form):
    new_plan = forms.ChoiceField(choices=[])

    def __init__(self, *args, current: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_plan"].choices = [
            (name, f"{plans.PLANS[name].display_name} ({dollars(plans.PLANS[name].price_cents)})")
            for name in plans.PAID_PLANS
            if name != current
        ]


class ChangePlan(Operation):
    slug, title, permission, button = "change-plan", "Change plan", PERM_CHANGE_PLAN, "Change"

    def unavailable(self, obj):
        return _paid(obj)

    def form(self, obj, data=None):
        return ChangePlanForm(data=data, current=obj.plan)

    def preview(self, obj):
        facts: list[tuple[str, object]] = [
            ("Current plan", f"{obj.plan} ({dollars(plans.PLANS[obj.plan].price_cents)}/month)")
        ]
        if obj.current_period_start and obj.current_period_end:
            now = timezone.now()
            unused = refunds.prorated_refund_amount(
                amount_paid=10_000,
                period_start=obj.current_period_start,
                period_end=obj.current_period_end,
                now=now,
            )
            facts.append(("Unused part of the period", f"{unused / 100:.0f}%"))
            for name in plans.PAID_PLANS:
                if name != obj.plan:
                    difference = plans.PLANS[name].price_cents - plans.PLANS[obj.plan].price_cents
                    facts.append(
                        (f"Estimated proration to {name}", dollars(difference * unused // 10_000))
                    )
        return Preview(
            facts=facts,
            effects=[
                "Stripe changes the price now and invoices (or credits) the difference for the "
                "rest of the period; the estimate above is the price difference times the "
                "unused share (Stripe's own preview is not read yet).",
                "The license is re-signed and the instance redeployed with the new limits.",
            ],
        )

    def perform(self, request, obj, data):
        subscription = plan_changes.subscription_change_plan(
            customer=obj.customer, new_plan=data["new_plan"], actor=actor_of(request.user)
        )
        return Outcome(f"{obj.customer.customer_id} is now on {subscription.plan}.")


class TrialFilter(admin.SimpleListFilter):
    title = "trial ends"
    parameter_name = "trial"

    def lookups(self, request, model_admin):
        return [("this_week", "In the next 7 days")]

    def queryset(self, request, queryset):
        if self.value() == "this_week":
            now = timezone.now()
            return queryset.filter(
                status=Subscription.Status.TRIALING,
                trial_ends_at__gte=now,
                trial_ends_at__lt=now + timedelta(days=7),
            )
        return queryset


@admin.register(Subscription)
class SubscriptionAdmin(OperationsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every field is Stripe's or a service's: changed only by the operations."""

    list_display = (
        "customer",
        "plan",
        "status",
        "trial_ends_at",
        "current_period_end",
        "cancel_at_period_end",
        "stripe_subscription_id",
    )
    list_filter = (TrialFilter, "plan", "status", "cancel_at_period_end")
    search_fields = ("customer__customer_id", "customer__email", "stripe_subscription_id")
    list_select_related = ("customer",)
    readonly_fields = [f.name for f in Subscription._meta.fields]
    operations = (IssueRefund(), CancelAtPeriodEnd(), Keep(), CancelNow(), ChangePlan())

    def object_url(self, obj) -> str:
        """Back to the customer's page, where the subscription's operations are offered."""
        return reverse("admin:customers_customer_change", args=[obj.customer.pk])


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "customer", "amount", "reason", "status", "stripe_refund_id")
    list_filter = ("status", "reason")
    search_fields = ("customer__customer_id", "customer__email", "stripe_refund_id")
    list_select_related = ("customer",)
    readonly_fields = [f.name for f in Refund._meta.fields]


def _event_customer(event: StripeEvent) -> Customer | None:
    stripe_customer = ((event.payload.get("data") or {}).get("object") or {}).get("customer")
    if isinstance(stripe_customer, dict):
        stripe_customer = stripe_customer.get("id")
    if not stripe_customer:
        return None
    return Customer.objects.filter(stripe_customer_id=stripe_customer).first()


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Payments as recorded from Stripe (invoice payments): what refunds are made against."""

    list_display = ("invoice_created_at", "customer", "amount", "stripe_invoice_id", "paid_at")
    search_fields = ("customer__customer_id", "customer__email", "stripe_invoice_id")
    list_select_related = ("customer",)
    readonly_fields = [f.name for f in Payment._meta.fields]


class Replay(Operation):
    slug, title, permission, button = "replay", "Replay", PERM_REPLAY_EVENT, "Replay"

    def unavailable(self, obj):
        if obj.status in (StripeEvent.Status.FAILED, StripeEvent.Status.PENDING):
            return None
        return f"{obj.stripe_event_id} is {obj.status}: only failed or pending events replay."

    def preview(self, obj):
        return Preview(
            facts=[
                ("Event", f"{obj.type} ({obj.stripe_event_id})"),
                ("Status", obj.status),
                ("Attempts", obj.attempts),
                ("Last error", obj.last_error or "-"),
            ],
            effects=[
                "The stored event is applied again, as its webhook would: state that is "
                "already current is left as it is."
            ],
        )

    def perform(self, request, obj, data):
        try:
            event = stripe_event_process(event_id=obj.pk)
        except ApplicationError:
            raise
        except Exception as exc:  # the handler's error, kept on the row as `failed`
            raise ApplicationError(f"{obj.stripe_event_id} failed again: {exc}") from exc
        finally:
            obj.refresh_from_db()
            audit_record(
                action="stripe.event_replayed",
                customer=_event_customer(obj),
                actor=actor_of(request.user),
                event=obj.stripe_event_id,
                status=obj.status,
            )
        return Outcome(f"{event.stripe_event_id}: {event.status}.")


@admin.register(StripeEvent)
class StripeEventAdmin(OperationsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The durable webhook inbox; a failed event can be replayed from its page."""

    list_display = ("received_at", "stripe_event_id", "type", "status", "attempts")
    list_filter = ("status", "type")
    search_fields = ("stripe_event_id", "type")
    readonly_fields = [f.name for f in StripeEvent._meta.fields]
    operations = (Replay(),)


# ---------------------------------------------------------------- the admin index
def _month_ends(now: datetime, months: int) -> list[tuple[str, datetime]]:
    """(label, moment) for the end of each of the last `months` calendar months (UTC); the
    current month ends now."""
    points, year, month = [], now.year, now.month
    for _ in range(months - 1):
        first = datetime(year, month, 1, tzinfo=UTC)  # the end of the month before
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        points.append((f"{calendar.month_abbr[month]} {year}", first))
    return [*reversed(points), (f"{calendar.month_abbr[now.month]} {now.year} (now)", now)]


def mrr_trend(now: datetime, months: int = 12) -> list[dict]:
    """Monthly recurring revenue at the end of each of the last `months` months, in cents,
    from the subscriptions and the plan prices (core.plans).

    Now: every subscription paid through Stripe that is active or past due. Before: a
    subscription counts from its paid start (the end of its trial, else its creation) until
    it was canceled, on its current plan (the service keeps no earlier plans, so a past month
    is shown on today's plans). A plan granted by staff without Stripe is not revenue.
    """
    rows = list(
        Subscription.objects.filter(plan__in=plans.PAID_PLANS)
        .exclude(stripe_subscription_id="")
        .values("plan", "status", "created_at", "trial_ends_at", "canceled_at")
    )
    trend = []
    for label, end in _month_ends(now, months):
        total = 0
        for row in rows:
            if end == now:
                counts = row["status"] in plans.ENTITLED_STATUSES
            else:
                start = max(row["created_at"], row["trial_ends_at"] or row["created_at"])
                counts = start <= end and (row["canceled_at"] is None or row["canceled_at"] > end)
            if counts:
                total += plans.PLANS[row["plan"]].price_cents
        trend.append(
            {"label": label, "month": label[:3], "cents": total, "dollars": dollars(total)}
        )
    return trend


def overview(request) -> dict:
    """The admin index's overview; each figure links to the filtered list behind it."""
    now = timezone.now()
    statuses = dict(
        Subscription.objects.values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    by_status = [
        {
            "label": status.replace("_", " "),
            "count": statuses.get(status, 0),
            "url": reverse("admin:customers_customer_changelist")
            + f"?subscription__status__exact={status}",
        }
        for status in ("trialing", "active", "past_due", "canceled")
    ]
    scheduled = Customer.objects.filter(is_active=False, scheduled_deletion__isnull=False).count()
    by_status.append(
        {
            "label": "scheduled for deletion",
            "count": scheduled,
            "url": reverse("admin:customers_customer_changelist") + "?lifecycle=scheduled",
        }
    )
    trend = mrr_trend(now)
    top = max([1, *(point["cents"] for point in trend)])
    for point in trend:
        point["pct"] = round(100 * point["cents"] / top)
    unpaid_count, unpaid = mirror.unpaid_invoices(limit=5)
    trials = Subscription.objects.filter(
        status=Subscription.Status.TRIALING,
        trial_ends_at__gte=now,
        trial_ends_at__lt=now + timedelta(days=7),
    ).count()
    return {
        "by_status": by_status,
        "mrr_cents": trend[-1]["cents"],
        "mrr": trend[-1]["dollars"],
        "mrr_trend": trend,
        "trials_ending": trials,
        "trials_url": reverse("admin:subscriptions_subscription_changelist") + "?trial=this_week",
        "failed_deployments": Deployment.objects.filter(status=Deployment.Status.FAILED).count(),
        "failed_deployments_url": reverse("admin:deployments_deployment_changelist")
        + "?status__exact=failed",
        "failed_events": StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).count(),
        "failed_events_url": reverse("admin:subscriptions_stripeevent_changelist")
        + "?status__exact=failed",
        "flower_url": settings.FLOWER_URL,
        "api_docs_url": reverse("swagger-ui"),
        "unpaid_invoices": unpaid_count,
        "unpaid_invoice_list": [
            (
                invoice,
                f"${invoice.amount_remaining / 100:,.2f}",
                reverse("admin:customers_customer_change", args=[invoice.customer.pk])
                if invoice.customer
                else "",
            )
            for invoice in unpaid
        ],
        "mirror_unavailable": mirror.mirror_is_configured(),
    }


def _index_with_overview(site: admin.AdminSite) -> None:
    """The admin index with the overview. The default site is config's; until config makes
    its own AdminSite, its index view is wrapped here, once."""
    stock = site.index
    if getattr(stock, "with_overview", False):
        return

    def index(request, extra_context=None):
        context = {**(extra_context or {})}
        if request.user.is_active and request.user.is_staff:
            context["overview"] = overview(request)
        return stock(request, extra_context=context)

    index.with_overview = True
    site.index = index


_index_with_overview(admin.site)
