"""Headers on every answer: a Content-Security-Policy and a Permissions-Policy, and
`Cache-Control: no-store` on API answers that carry keys, licenses or customer data."""

from __future__ import annotations

import re

import pytest

from tests.helpers import staff_api_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/health", "/admin/login/", "/api/docs/", "/api/customers"])
def test_every_answer_carries_csp_and_permissions_policy(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert "camera=()" in response.headers["Permissions-Policy"]


def test_license_answer_is_not_cached(signup):
    customer = signup()
    assert customer.body["api_key"]
    # the response the fixture saw is gone; ask again for what carries the license
    response = customer.client.get(f"/api/licenses/{customer.id}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_signup_response_itself_is_not_cached(api_client):
    response = api_client.post(
        "/api/customers/signup",
        {
            "email": "nostore@example.com",
            "company_name": "N",
            "full_name": "N",
            "password": "SecurePass123",
        },
        format="json",
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"


def test_issued_api_key_is_not_cached(signup):
    customer = signup()
    response = staff_api_client().post(
        f"/api/customers/{customer.id}/api-keys", {"name": "ci"}, format="json"
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"


def test_errors_are_not_cached_either(api_client):
    response = api_client.get("/api/customers")
    assert response.status_code == 401
    assert response.headers["Cache-Control"] == "no-store"


def test_api_docs_page_has_no_inline_script(client):
    page = client.get("/api/docs/").content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL)
    assert scripts
    for attributes, body in scripts:
        assert "src=" in attributes, attributes
        assert body.strip() == ""
    start_up = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', page).group(1)
    script = client.get(start_up.replace("&amp;", "&"))
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()
