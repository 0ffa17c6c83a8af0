"""The pages behind the links in customer emails (lifecycle.links): GET shows what will
happen, POST does it. A used, expired or tampered link gets a page that says so, not JSON."""

from __future__ import annotations

from decimal import Decimal
from http import HTTPStatus

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core.audit import audit_record
from core.errors import ApplicationError
from core.plans import PAID_PLANS, PLANS
from lifecycle import links, offboarding, plan_changes
from subscriptions.services import checkout_session_start


def _page(request: HttpRequest, title: str, *paragraphs: str, status: int = 200, **extra):
    context = {"title": title, "paragraphs": [p for p in paragraphs if p], **extra}
    return render(request, "links/page.html", context, status=status)


def _date(value) -> str:
    return f"{value:%B %d, %Y}" if value else ""


def _refusal(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    status = exc.status_code if 400 <= exc.status_code < 500 else HTTPStatus.SERVICE_UNAVAILABLE
    return _page(request, exc.error, exc.message, status=status)


@require_http_methods(["GET", "POST"])
def email_link(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = links.link_read(token)
        if request.method == "POST":
            return _act(request, link)
        return _confirm(request, link)
    except ApplicationError as exc:
        return _refusal(request, exc)


def _confirm(request: HttpRequest, link: links.EmailLink) -> HttpResponse:
    customer = link.customer
    subscription = customer.subscription
    if link.purpose == links.KEEP:
        return _page(
            request,
            "Keep your subscription",
            f"Your {PLANS[subscription.plan].display_name} subscription is set to end on "
            f"{_date(subscription.current_period_end)}.",
            "Confirm below and it continues as before: nothing is charged now, the next "
            "invoice comes at the end of the period.",
            action="Keep my subscription",
        )
    if link.purpose == links.REACTIVATE:
        immediate = settings.EMAIL_LINK_REACTIVATION == "immediate"
        return _page(
            request,
            "Reactivate your account",
            f"Account {customer.customer_id} was deactivated on {_date(customer.deleted_at)}"
            + (
                f"; its data is deleted for good on {_date(customer.scheduled_deletion)}."
                if customer.scheduled_deletion
                else "."
            ),
            "Confirm below and your account is active again; choose a plan afterwards to use "
            "paid features."
            if immediate
            else "Confirm below to ask us to reactivate it; we confirm by email once it is done.",
            action="Reactivate my account" if immediate else "Ask for reactivation",
        )
    plans = [
        {
            "name": name,
            "display_name": PLANS[name].display_name,
            "price": f"${Decimal(PLANS[name].price_cents) / 100:.2f}",
        }
        for name in PAID_PLANS
    ]
    return _page(
        request,
        "Choose a plan",
        f"Pick the plan for {customer.company_name or customer.email}; you pay on Stripe's "
        "secure checkout page next.",
        action="Continue to payment",
        plans=plans,
    )


def _act(request: HttpRequest, link: links.EmailLink) -> HttpResponse:
    customer = link.customer
    actor = f"email-link:{customer.customer_id}"
    if link.purpose == links.KEEP:
        with transaction.atomic():
            links.link_use(link)
            subscription = plan_changes.subscription_cancel_at_period_end(
                customer=customer, cancel=False, actor=actor
            )
        return _page(
            request,
            "Your subscription continues",
            f"Thank you. Your subscription renews on {_date(subscription.current_period_end)}.",
        )
    if link.purpose == links.REACTIVATE:
        if customer.is_active:
            return _page(request, "Your account is active", "There is nothing to reactivate.")
        if customer.scheduled_deletion and customer.scheduled_deletion <= timezone.now():
            return _page(
                request,
                "Data has been deleted",
                "The retention period has ended and the data is deleted for good; sign up again.",
                status=HTTPStatus.GONE,
            )
        with transaction.atomic():
            links.link_use(link)
            if settings.EMAIL_LINK_REACTIVATION == "immediate":
                offboarding.customer_reactivate(customer_id=customer.customer_id, actor=actor)
                return _page(request, "Your account is active again", "Welcome back.")
            audit_record(action="customer.reactivation_requested", customer=customer, actor=actor)
        return _page(
            request,
            "We have your request",
            "We will reactivate your account and confirm by email.",
            note=f"Reference: {customer.customer_id}",
        )
    plan = request.POST.get("plan", "")
    if plan not in PAID_PLANS:
        return _page(request, "Choose a plan", "Please pick one of the plans.", status=400)
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    session = checkout_session_start(
        customer=customer,
        plan=plan,
        success_url=f"{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base}/checkout/cancel",
    )
    return HttpResponseRedirect(session["checkout_url"], status=HTTPStatus.SEE_OTHER)
