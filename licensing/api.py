"""License endpoints: fetch, public key, JWKS, history, revocation and revocation list."""

from __future__ import annotations

import json

from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictSerializer, VerificationRateThrottle, api_doc, cacheable
from core.timestamps import iso
from customers.auth import IsStaff, IsStaffOrCustomerInstance, customer_get_for
from licensing import services, signing
from licensing.selectors import license_history
from licensing.serializers import (
    JwksOut,
    LicenseHistoryOut,
    LicenseOut,
    LicenseRevokedOut,
    RevocationListOut,
)

# How long instances and proxies may reuse the verification answers before revalidating (an
# unchanged answer then costs a 304): keys change rarely (rotation keeps old ones listed), the
# revocation list should reach instances within a minute.
KEYS_MAX_AGE = 300
REVOCATIONS_MAX_AGE = 60


class LicenseView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Get the customer's license (signed anew only when it changes)",
        responses={200: LicenseOut},
    )
    def get(self, request, customer_id: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        issued = services.license_get_or_issue(customer=customer)
        return Response({"license": issued.token, "decoded": issued.claims})


class PublicKeyView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [VerificationRateThrottle]

    @api_doc(
        "public",
        "Current license public key (PEM)",
        responses={(200, "application/x-pem-file"): str},
    )
    def get(self, request):
        return cacheable(
            request,
            signing.current_public_pem(),
            content_type="application/x-pem-file",
            max_age=KEYS_MAX_AGE,
        )


class JwksView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [VerificationRateThrottle]

    @api_doc(
        "public",
        "Every license key that still verifies, by kid (JWKS)",
        responses={200: JwksOut},
    )
    def get(self, request):
        body = json.dumps({"keys": signing.verification_keys()}, separators=(",", ":"))
        return cacheable(request, body, content_type="application/json", max_age=KEYS_MAX_AGE)


class RevocationListView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [VerificationRateThrottle]

    @api_doc(
        "public",
        "Signed revocation list: a short-lived JWT whose `revoked` claim lists revoked jtis",
        responses={200: RevocationListOut},
    )
    def get(self, request):
        body = json.dumps({"revocations": services.revocation_list_token()})
        return cacheable(
            request, body, content_type="application/json", max_age=REVOCATIONS_MAX_AGE
        )


class LicenseHistoryView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "License history (hashes, never tokens) with statistics",
        responses={200: LicenseHistoryOut},
    )
    def get(self, request, customer_id: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        rows, statistics = license_history(customer=customer)
        return Response(
            {
                "customer_id": customer.customer_id,
                "email": customer.email,
                "history": [
                    {
                        "id": row.id,
                        "action": row.action,
                        "plan": row.plan,
                        "max_devices": row.max_devices,
                        "license_hash": row.license_hash or None,
                        "generated_at": iso(row.generated_at),
                        "expires_at": iso(row.expires_at),
                        "metadata": row.metadata,
                    }
                    for row in rows
                ],
                "statistics": statistics,
            }
        )


class RevokeInput(StrictSerializer):
    reason = serializers.CharField(max_length=500)


class LicenseRevokeView(APIView):
    permission_classes = [IsStaff]

    @api_doc(
        "staff",
        "Revoke the customer's license",
        request=RevokeInput,
        responses={200: LicenseRevokedOut},
        errors=(404,),
    )
    def post(self, request, customer_id: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        data = RevokeInput(data=request.data)
        data.is_valid(raise_exception=True)
        revocation = services.license_revoke(
            customer=customer, reason=data.validated_data["reason"], actor=str(request.user)
        )
        return Response(
            {
                "message": "License revoked",
                "customer_id": customer.customer_id,
                "reason": revocation.reason,
                "revoked_at": iso(revocation.revoked_at),
            }
        )
