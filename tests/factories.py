"""factory_boy factories for rows that tests need without going through signup."""

from datetime import timedelta

import factory
from django.utils import timezone

from customers.models import Customer
from subscriptions.models import Subscription


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    company_name = factory.Sequence(lambda n: f"Company {n}")
    full_name = "Pat Customer"


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    customer = factory.SubFactory(CustomerFactory)
    plan = "professional"
    status = Subscription.Status.ACTIVE
    current_period_start = factory.LazyFunction(timezone.now)
    current_period_end = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
