"""Writes for deployment records."""

from customers.models import Customer
from deployments.models import Deployment


def deployment_queue(*, customer: Customer) -> Deployment:
    """Record that the customer's instance must be installed (the record is the outbox).

    The Celery job that acts on it comes with the deployments issue; the record is
    written in the caller's transaction so it exists exactly when the customer does.
    """
    deployment, _ = Deployment.objects.get_or_create(
        customer=customer, defaults={"namespace": customer.namespace}
    )
    return deployment
