"""Response schemas of the license endpoints, for the OpenAPI document (a test checks every
real answer against them)."""

from __future__ import annotations

from rest_framework import serializers


class _TrialOut(serializers.Serializer):
    isTrialMode = serializers.BooleanField()  # noqa: N815 - the guide's license field names
    trialEndsAt = serializers.DateTimeField(required=False)  # noqa: N815


class _LicenseSubscriptionOut(serializers.Serializer):
    status = serializers.CharField()
    currentPeriodEndsAt = serializers.DateTimeField(allow_null=True)  # noqa: N815


class LicenseClaimsOut(serializers.Serializer):
    iss = serializers.CharField()
    aud = serializers.CharField()
    sub = serializers.CharField(help_text="The customer id.")
    jti = serializers.CharField()
    iat = serializers.IntegerField()
    exp = serializers.IntegerField()
    customerId = serializers.CharField()  # noqa: N815
    customerName = serializers.CharField()  # noqa: N815
    plan = serializers.CharField()
    features = serializers.DictField(help_text="maxDevices, dataRetentionDays, can*/has* flags.")
    limits = serializers.DictField(
        child=serializers.IntegerField(), help_text="-1 means unlimited."
    )
    trial = _TrialOut()
    subscription = _LicenseSubscriptionOut()
    issuedAt = serializers.IntegerField()  # noqa: N815
    expiresAt = serializers.IntegerField()  # noqa: N815


class LicenseOut(serializers.Serializer):
    license = serializers.CharField(help_text="The signed RS256 JWT (IOTISTIC_LICENSE_KEY).")
    decoded = LicenseClaimsOut()


class JwkOut(serializers.Serializer):
    kty = serializers.CharField()
    kid = serializers.CharField()
    use = serializers.CharField()
    alg = serializers.CharField()
    n = serializers.CharField()
    e = serializers.CharField()


class JwksOut(serializers.Serializer):
    keys = JwkOut(many=True)


class RevocationListOut(serializers.Serializer):
    revocations = serializers.CharField(help_text="A short-lived signed JWT; `revoked`: jtis.")


class _HistoryRowOut(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField()
    plan = serializers.CharField()
    max_devices = serializers.IntegerField()
    license_hash = serializers.CharField(allow_null=True)
    generated_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    metadata = serializers.DictField()


class _StatisticsOut(serializers.Serializer):
    totalGenerations = serializers.IntegerField()  # noqa: N815
    byAction = serializers.DictField(child=serializers.IntegerField())  # noqa: N815
    byPlan = serializers.DictField(child=serializers.IntegerField())  # noqa: N815
    otherEvents = serializers.DictField(child=serializers.IntegerField())  # noqa: N815


class LicenseHistoryOut(serializers.Serializer):
    customer_id = serializers.CharField()
    email = serializers.EmailField()
    history = _HistoryRowOut(many=True)
    statistics = _StatisticsOut()


class LicenseRevokedOut(serializers.Serializer):
    message = serializers.CharField()
    customer_id = serializers.CharField()
    reason = serializers.CharField()
    revoked_at = serializers.DateTimeField()
