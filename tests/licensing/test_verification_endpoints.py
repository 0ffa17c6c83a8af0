"""What every instance polls (public key, JWKS, revocation list): its own, generous rate
limit, and answers that cache and revalidate (ETag, Cache-Control, 304)."""

from __future__ import annotations

import pytest

from customers.models import Customer
from licensing.services import license_restore
from tests.helpers import staff_api_client

pytestmark = pytest.mark.django_db

VERIFICATION_PATHS = ["/api/licenses/public-key", "/.well-known/jwks.json",
                      "/api/licenses/revocations"]  # fmt: skip


def test_junk_signups_do_not_lock_instances_out_of_verification(api_client, settings):
    settings.RATE_LIMIT_PUBLIC = "3/15m"
    junk = [
        api_client.post("/api/customers/signup", {"email": "x"}, format="json").status_code
        for _ in range(5)
    ]
    assert junk[-1] == 429  # signup's own limit is used up
    for path in VERIFICATION_PATHS:
        assert api_client.get(path).status_code == 200, path


def test_verification_has_its_own_limit(api_client, settings):
    settings.RATE_LIMIT_VERIFICATION = "2/15m"
    codes = [api_client.get("/.well-known/jwks.json").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    # signup is not affected
    response = api_client.post("/api/customers/signup", {"email": "x"}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize(("path", "max_age"), [(VERIFICATION_PATHS[0], 300),
                                                (VERIFICATION_PATHS[1], 300),
                                                (VERIFICATION_PATHS[2], 60)])  # fmt: skip
def test_verification_answers_cache_and_revalidate(api_client, path, max_age):
    first = api_client.get(path)
    assert first.status_code == 200
    assert first["Cache-Control"] == f"public, max-age={max_age}"
    etag = first["ETag"]

    again = api_client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag

    other = api_client.get(path, HTTP_IF_NONE_MATCH='"something-else"')
    assert other.status_code == 200
    assert other.content == first.content


def test_a_revocation_changes_the_revocation_lists_etag(
    api_client, signup, django_capture_on_commit_callbacks
):
    customer = signup()
    before = api_client.get("/api/licenses/revocations")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_api_client().post(
            f"/api/licenses/{customer.id}/revoke", {"reason": "test"}, format="json"
        )
    assert response.status_code == 200
    after = api_client.get("/api/licenses/revocations", HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]


def test_license_answers_are_never_cached(signup):
    customer = signup()
    response = customer.client.get(f"/api/licenses/{customer.id}")
    assert response["Cache-Control"] == "no-store"
    assert "ETag" not in response


def test_history_statistics_add_up_with_revocations(signup, staff_client):
    # given a license that was revoked and restored (events that sign nothing)
    customer = signup()
    staff_client.post(f"/api/licenses/{customer.id}/revoke", {"reason": "x"}, format="json")
    license_restore(customer=Customer.objects.get(customer_id=customer.id), actor="staff:test")

    statistics = staff_client.get(f"/api/licenses/{customer.id}/history").json()["statistics"]

    assert statistics["totalGenerations"] == sum(statistics["byAction"].values())
    assert statistics["totalGenerations"] == sum(statistics["byPlan"].values())
    assert statistics["otherEvents"] == {"revoked": 1, "restored": 1}
