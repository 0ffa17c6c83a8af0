"""Signup: a customer with a trial, an API key, a signed license and a queued deployment."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from core.audit import audit_record
from customers import credentials, services
from customers.models import Customer
from deployments.models import Deployment
from deployments.services import deployment_queue
from licensing.services import IssuedLicense, license_get_or_issue
from subscriptions import stripe_api
from subscriptions.models import Subscription
from subscriptions.services import subscription_start_trial
from subscriptions.tasks import customer_stripe_sync_task

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignupResult:
    customer: Customer
    subscription: Subscription
    api_key: credentials.IssuedKey
    license: IssuedLicense
    deployment: Deployment


def customer_signup(
    *,
    email: str,
    company_name: str = "",
    full_name: str = "",
    password: str | None = None,
    trial_days: int | None = None,
    actor: str = "signup",
) -> SignupResult:
    """Create a customer with a trial, an API key, a signed license and a queued deployment.

    All rows are written in one transaction: a failure anywhere leaves no customer.
    A duplicate email (compared case-insensitively) is refused with 409.
    """
    email = services.customer_email_normalize(email)
    services.customer_email_check_free(email=email)
    try:
        with transaction.atomic():
            customer = services.customer_create(
                email=email, company_name=company_name, full_name=full_name, password=password
            )
            subscription = subscription_start_trial(customer=customer, trial_days=trial_days)
            api_key = credentials.api_key_issue(customer=customer, name="signup")
            issued = license_get_or_issue(customer=customer)
            deployment = deployment_queue(customer=customer)
            audit_record(
                action="customer.created",
                customer=customer,
                actor=actor,
                plan=subscription.plan,
                status=subscription.status,
            )
    except IntegrityError:
        # Two signups with one email raced past the check above; the constraint decided.
        services.customer_email_check_free(email=email)
        raise
    _enqueue_stripe_customer(customer)
    return SignupResult(
        customer=customer,
        subscription=subscription,
        api_key=api_key,
        license=issued,
        deployment=deployment,
    )


def _enqueue_stripe_customer(customer: Customer) -> None:
    """Create the Stripe customer off the request path; a broker outage is caught up by the
    periodic sweep (the customer's blank stripe_customer_id is the record of what is owed)."""
    if not stripe_api.is_configured():
        return
    try:
        customer_stripe_sync_task.delay(customer.pk)
    except Exception:  # a broker outage must not fail a signup that is already committed
        logger.warning(
            "Could not enqueue the Stripe customer of %s; the sweep will", customer.customer_id
        )
