"""License audit trail and revocations. Tokens themselves are never stored."""

from django.db import models

from customers.models import Customer


class LicenseHistory(models.Model):
    class Action(models.TextChoices):
        GENERATED = "generated"
        UPGRADED = "upgraded"
        DOWNGRADED = "downgraded"
        REVOKED = "revoked"
        RESTORED = "restored"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="license_history")
    action = models.CharField(max_length=20, choices=Action.choices)
    plan = models.CharField(max_length=32)
    max_devices = models.IntegerField()
    # SHA-256 of the JWT: lets support match a token a customer shows them, without storing it.
    license_hash = models.CharField(max_length=64, blank=True)
    jti = models.CharField(max_length=64, blank=True, db_index=True)
    kid = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    generated_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-generated_at", "-id"]
        verbose_name_plural = "license history"
        indexes = [models.Index(fields=["customer", "-generated_at"])]

    def __str__(self) -> str:
        return f"{self.customer.customer_id} {self.action} {self.plan}"


class LicenseRevocation(models.Model):
    """A customer whose licenses are revoked: fetches refused, jtis on the revocation list."""

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, related_name="license_revocation"
    )
    reason = models.CharField(max_length=500, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)
    revoked_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.customer.customer_id} revoked {self.revoked_at:%Y-%m-%d}"
