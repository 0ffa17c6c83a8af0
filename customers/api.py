"""Customer endpoints: signup, staff create/list/get, and API key management."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import PageLimitPagination, PublicRateThrottle, api_doc, page_parameters
from core.audit import audit_record
from customers import credentials, selectors
from customers.auth import IsStaff, IsStaffOrCustomerInstance, actor_of, customer_get_for
from customers.models import CustomerApiKey
from customers.serializers import (
    ApiKeyCreateInput,
    ApiKeyListOut,
    ApiKeyOut,
    CustomerCreateInput,
    CustomerDetailOut,
    CustomerListOut,
    IssuedApiKeyOut,
    SignupInput,
    SignupOut,
    api_key_out,
    customer_out,
    subscription_out,
)
from lifecycle import signup


def signup_response(result: signup.SignupResult) -> dict:
    deployment = result.deployment
    # The Stripe customer and the deployment may have moved on after commit (in-process
    # tasks run then): answer with what is true now, not the state at enqueue time.
    result.customer.refresh_from_db(fields=["stripe_customer_id"])
    deployment.refresh_from_db(fields=["status"])
    return {
        "customer": customer_out(result.customer),
        "subscription": subscription_out(result.subscription),
        "license": {"jwt": result.license.token},
        "deployment": {
            "job_id": str(deployment.job_id),
            "namespace": deployment.namespace,
            "status": deployment.status,
        },
        "api_key": result.api_key.raw_key,
    }


def _create(request, serializer_class) -> Response:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    actor = actor_of(request.user) if request.user.is_authenticated else "public-signup"
    result = signup.customer_signup(**data.validated_data, actor=actor)
    return Response(signup_response(result), status=status.HTTP_201_CREATED)


class SignupView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [PublicRateThrottle]

    @api_doc(
        "public",
        "Sign up: customer, trial subscription, API key, license and queued deployment",
        request=SignupInput,
        responses={201: SignupOut},
        errors=(409,),
        description="`api_key` is shown once; store it in the customer instance.",
    )
    def post(self, request):
        return _create(request, SignupInput)


class CustomerListCreateView(APIView):
    permission_classes = [IsStaff]

    @api_doc(
        "staff",
        "List customers",
        operation_id="customers_list",
        parameters=page_parameters("customers"),
        responses={200: CustomerListOut},
        errors=(404,),
    )
    def get(self, request):
        paginator = PageLimitPagination()
        page = paginator.paginate_queryset(selectors.customer_list(), request, view=self)
        return Response(
            {
                "customers": [
                    {
                        **customer_out(c),
                        "subscription": subscription_out(getattr(c, "subscription", None)),
                    }
                    for c in page
                ],
                "pagination": paginator.pagination_meta(),
            }
        )

    @api_doc(
        "staff",
        "Create a customer (same effects as signup)",
        request=CustomerCreateInput,
        responses={201: SignupOut},
        errors=(409,),
    )
    def post(self, request):
        return _create(request, CustomerCreateInput)


class CustomerDetailView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc("staff_or_customer", "Get a customer", responses={200: CustomerDetailOut})
    def get(self, request, customer_id: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        return Response(
            {
                "customer": customer_out(customer),
                "subscription": subscription_out(getattr(customer, "subscription", None)),
            }
        )


def _issue_key(request, customer_id: str, issue, action: str) -> Response:
    """Issue (or rotate to) a new key of the customer; the secret is in this response only."""
    customer = customer_get_for(user=request.user, customer_id=customer_id)
    data = ApiKeyCreateInput(data=request.data)
    data.is_valid(raise_exception=True)
    issued = issue(customer=customer, name=data.validated_data["name"])
    audit_record(
        action=action, customer=customer, actor=actor_of(request.user), prefix=issued.record.prefix
    )
    return Response(
        {"api_key": issued.raw_key, **api_key_out(issued.record)}, status=status.HTTP_201_CREATED
    )


class ApiKeyListCreateView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "List a customer's API keys (prefixes only)",
        responses={200: ApiKeyListOut},
    )
    def get(self, request, customer_id: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        return Response({"api_keys": [api_key_out(k) for k in customer.api_keys.all()]})

    @api_doc(
        "staff_or_customer",
        "Issue an additional API key (shown once)",
        request=ApiKeyCreateInput,
        responses={201: IssuedApiKeyOut},
        errors=(409,),
        description="A customer holds at most `MAX_API_KEYS_PER_CUSTOMER` unrevoked keys "
        "(default 10); one more answers 409 `API key limit reached` until one is revoked "
        "(`DELETE .../api-keys/{prefix}`) or the keys are rotated (rotation works at the cap).",
    )
    def post(self, request, customer_id: str):
        return _issue_key(request, customer_id, credentials.api_key_issue, "api_key.issued")


class ApiKeyRotateView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Rotate: revoke every live key of the customer and issue one new key (shown once)",
        request=ApiKeyCreateInput,
        responses={201: IssuedApiKeyOut},
    )
    def post(self, request, customer_id: str):
        return _issue_key(request, customer_id, credentials.api_key_rotate, "api_key.rotated")


class ApiKeyDetailView(APIView):
    permission_classes = [IsStaffOrCustomerInstance]

    @api_doc(
        "staff_or_customer",
        "Revoke one API key",
        request=None,
        responses={200: ApiKeyOut},
    )
    def delete(self, request, customer_id: str, prefix: str):
        customer = customer_get_for(user=request.user, customer_id=customer_id)
        api_key = (
            CustomerApiKey.objects.filter(customer=customer, prefix=prefix).first()
            if prefix.isprintable()
            else None
        )
        if api_key is None:
            raise NotFound(f"API key {prefix} not found.")
        api_key = credentials.api_key_revoke(api_key=api_key)
        audit_record(
            action="api_key.revoked", customer=customer, actor=actor_of(request.user), prefix=prefix
        )
        return Response(api_key_out(api_key))
