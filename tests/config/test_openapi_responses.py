"""The OpenAPI document tells the truth: real answers (successes and refusals) match the
schema a client would be generated from, operations list only the credentials they accept,
and every refusal an operation can give is documented with the error shape."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.helpers import (
    WEBHOOK_SECRET,
    customer_client,
    paid_customer,
    post_signed_webhook,
    staff_api_client,
)
from tests.openapi_check import check_response, openapi
from tests.usage.helpers import now_s, report_body

pytestmark = pytest.mark.django_db


def _operations():
    for path, item in openapi()["paths"].items():
        for method, op in item.items():
            yield method, path, op


def test_every_success_answer_is_described_field_by_field():
    untyped = set()
    for method, path, op in _operations():
        for status, response in op["responses"].items():
            if not status.startswith("2"):
                continue
            content = response.get("content", {})
            if "application/json" not in content:
                # not JSON: the public key's PEM file, stated as its own media type
                assert set(content) == {"application/x-pem-file"}, (method, path, content)
                continue
            schema = content["application/json"].get("schema", {})
            if "$ref" not in schema and "properties" not in schema:
                untyped.add((method, path))
    assert not untyped, sorted(untyped)


@pytest.mark.parametrize(
    ("rule", "accepted"),
    [
        ("Staff only", {"staffToken", "staffSession"}),
        ("Customer instance only", {"customerApiKey"}),
        ("Staff, or the customer's own", {"staffToken", "staffSession", "customerApiKey"}),
        ("Public", set()),
        ("Stripe only", set()),
    ],
)
def test_operations_list_only_the_credentials_their_rule_accepts(rule, accepted):
    found = [
        (method, path, op)
        for method, path, op in _operations()
        if op.get("description", "").startswith(f"**Auth:** {rule}")
    ]
    assert found
    for method, path, op in found:
        listed = {name for requirement in op.get("security", []) for name in requirement}
        assert listed == accepted, (method, path, listed)


def test_every_refusal_is_documented_with_the_error_shape():
    for method, path, op in _operations():
        description = op.get("description", "")
        expected = {"400"}
        if not description.startswith(("**Auth:** Public", "**Auth:** Stripe")):
            expected |= {"401", "403"}
        assert expected <= set(op["responses"]), (method, path, sorted(op["responses"]))
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)


def test_customer_endpoints_answer_as_documented(api_client, signup):
    staff = staff_api_client()
    body = {"email": "doc@example.com", "company_name": "Doc", "full_name": "D",
            "password": "x" * 12}  # fmt: skip
    signed_up = api_client.post("/api/customers/signup", body, format="json")
    check_response(signed_up, "/api/customers/signup", "post")
    check_response(
        api_client.post("/api/customers/signup", body, format="json"),
        "/api/customers/signup",
        "post",
    )  # fmt: skip  (409)
    check_response(
        api_client.post("/api/customers/signup", {"email": "x"}, format="json"),
        "/api/customers/signup",
        "post",
    )  # fmt: skip  (400)
    customer_id = signed_up.json()["customer"]["customer_id"]
    key = customer_client(signed_up.json()["api_key"])

    for client, path, method in [
        (staff, "/api/customers", "get"),
        (api_client, "/api/customers", "get"),  # 401
        (key, "/api/customers", "get"),  # 403
        (key, f"/api/customers/{customer_id}", "get"),
        (key, f"/api/customers/{signup().id}", "get"),  # another customer's: 404
        (key, f"/api/customers/{customer_id}/api-keys", "get"),
    ]:
        check_response(getattr(client, method)(path), path, method)

    issued = staff.post(f"/api/customers/{customer_id}/api-keys", {"name": "x"}, format="json")
    check_response(issued, f"/api/customers/{customer_id}/api-keys", "post")
    rotated = staff.post(f"/api/customers/{customer_id}/api-keys/rotate", {}, format="json")
    check_response(rotated, f"/api/customers/{customer_id}/api-keys/rotate", "post")
    prefix = rotated.json()["prefix"]
    revoke_path = f"/api/customers/{customer_id}/api-keys/{prefix}"
    check_response(staff.delete(revoke_path), revoke_path, "delete")


def test_license_endpoints_answer_as_documented(api_client, signup):
    customer = signup()
    staff = staff_api_client()
    for client, path in [
        (customer.client, f"/api/licenses/{customer.id}"),
        (staff, f"/api/licenses/{customer.id}/history"),
        (api_client, "/.well-known/jwks.json"),
        (api_client, "/api/licenses/revocations"),
    ]:
        check_response(client.get(path), path, "get")
    revoke = f"/api/licenses/{customer.id}/revoke"
    check_response(staff.post(revoke, {"reason": "doc"}, format="json"), revoke, "post")
    check_response(customer.client.post(revoke, {"reason": "x"}, format="json"), revoke, "post")


def test_offboarding_endpoints_answer_as_documented(signup, django_capture_on_commit_callbacks):
    staff = staff_api_client()
    customer = signup()
    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/api/subscriptions/deactivate", {"customer_id": customer.id}, format="json")
    for path in ("/api/subscriptions/scheduled-deletions",):
        check_response(staff.get(path), path, "get")
    reactivate = "/api/subscriptions/reactivate"
    with django_capture_on_commit_callbacks(execute=True):
        check_response(staff.post(reactivate, {"customer_id": customer.id}, format="json"),
                       reactivate, "post")  # fmt: skip
    check_response(
        staff.post(reactivate, {"customer_id": customer.id}, format="json"), reactivate, "post"
    )  # fmt: skip  (409: active)
    execute = "/api/admin/execute-deletions"
    check_response(staff.post(execute), execute, "post")


def test_deactivation_answers_as_documented(signup, django_capture_on_commit_callbacks):
    staff = staff_api_client()
    customer = signup()
    deactivate = "/api/subscriptions/deactivate"
    for body, expected in (
        ({"customer_id": customer.id, "issue_refund": True}, 200),  # nothing paid: a reason
        ({"customer_id": customer.id}, 200),  # again: the completed deactivation
        ({"customer_id": "cust_unknown"}, 404),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = staff.post(deactivate, body, format="json")
        assert response.status_code == expected, response.content
        check_response(response, deactivate, "post")


def test_usage_endpoints_answer_as_documented(signup):
    customer = signup()
    reports = [
        report_body(customer.id, at=now_s() - timedelta(hours=hours), instance_id=f"i-{hours}")
        for hours in (3, 2)
    ]
    # one instance that measures devices only: its counters are null in the history
    devices_only = {
        "customer_id": customer.id,
        "instance_id": "devices-only",
        "active_devices": 2,
        "total_devices": 3,
    }
    report = "/api/usage/report"
    for body, expected in ((reports[0], 201), (reports[0], 200), (devices_only, 201)):
        response = customer.client.post(report, body, format="json")
        assert response.status_code == expected, response.content
        check_response(response, report, "post")
    batch = "/api/usage/report/batch"
    response = customer.client.post(batch, {"reports": reports}, format="json")
    assert response.json()["duplicates"] == 1, response.content
    check_response(response, batch, "post")
    staff = staff_api_client()
    for client, path, expected in (
        (customer.client, f"/api/usage/{customer.id}", 200),
        (customer.client, f"/api/usage/{customer.id}?days=2&limit=1&page=2", 200),
        (customer.client, f"/api/usage/{customer.id}?days=367", 400),
        (staff, f"/api/usage/{customer.id}", 200),
        (customer.client, f"/api/usage/{customer.id}/consumption", 200),
    ):
        response = client.get(path)
        assert response.status_code == expected, response.content
        check_response(response, path, "get")
    history = customer.client.get(f"/api/usage/{customer.id}").json()
    assert {r["mqtt_bytes_sent"] is None for r in history["reports"]} == {True, False}


def test_queue_stats_answer_as_documented():
    check_response(staff_api_client().get("/api/queue/stats"), "/api/queue/stats", "get")


@pytest.mark.django_db(transaction=True)
def test_subscription_endpoints_answer_as_documented(signup, stripe_sim, settings):
    staff = staff_api_client()
    trial = signup()
    checkout = trial.client.post(
        "/api/subscriptions/checkout", {"customer_id": trial.id, "plan": "starter"}, format="json"
    )
    check_response(checkout, "/api/subscriptions/checkout", "post")
    customer = paid_customer(signup, stripe_sim, plan="starter", days_ago=3)
    body = {"customer_id": customer.id}
    for client, path, data in [
        (customer.client, "/api/subscriptions/upgrade", {**body, "new_plan": "professional"}),
        (customer.client, "/api/subscriptions/cancel-at-period-end", body),
        (customer.client, "/api/subscriptions/keep", body),
        (staff, "/api/subscriptions/refund", {**body, "use_prorated": True}),
        (customer.client, "/api/subscriptions/refund", body),  # 403: staff only
        (staff, "/api/subscriptions/cancel-immediate", body),
        (customer.client, "/api/subscriptions/cancel", body),
    ]:
        check_response(client.post(path, data, format="json"), path, "post")
    for path in (f"/api/subscriptions/{customer.id}", f"/api/subscriptions/{customer.id}/refunds"):
        check_response(customer.client.get(path), path, "get")
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    event = {"id": "evt_doc", "type": "product.created", "data": {"object": {"id": "p"}}}
    webhook = "/api/webhooks/stripe"
    check_response(post_signed_webhook(staff, event), webhook, "post")
    check_response(post_signed_webhook(staff, b"not json"), webhook, "post")  # 400
