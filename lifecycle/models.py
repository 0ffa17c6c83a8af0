"""The one record of the lifecycle workflows: which single-use email links were used."""

from django.db import models

from customers.models import Customer


class UsedEmailLink(models.Model):
    """A single-use link from a customer email (lifecycle.links) that has been used: its
    token's hash, so the same link cannot act twice."""

    token_hash = models.CharField(max_length=64, unique=True)
    purpose = models.CharField(max_length=20)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    used_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.purpose} link of {self.customer_id} used {self.used_at:%Y-%m-%d %H:%M}"
