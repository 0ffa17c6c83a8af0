"""Every error answers in the one shape: {"error", "message", "details"}; nothing gives a 500."""

import pytest

pytestmark = pytest.mark.django_db


def assert_error_shape(response, status_code):
    assert response.status_code == status_code, response.content
    body = response.json()
    assert set(body) == {"error", "message", "details"}
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["details"], dict)
    return body


def test_malformed_json_is_400_in_error_shape(api_client):
    response = api_client.post(
        "/api/customers/signup", data='{"email": "a@b.co",', content_type="application/json"
    )
    body = assert_error_shape(response, 400)
    assert body["error"] == "Malformed request body"
    assert "JSON parse error" in body["message"]


def test_wrong_types_are_400_with_per_field_details(api_client):
    response = api_client.post(
        "/api/customers/signup",
        {"email": 12, "company_name": ["x"], "full_name": {"a": 1}, "password": True},
        format="json",
    )
    body = assert_error_shape(response, 400)
    assert body["error"] == "Validation failed"
    assert set(body["details"]) == {"email", "company_name", "full_name", "password"}


def test_missing_fields_are_named(api_client):
    response = api_client.post("/api/customers/signup", {}, format="json")
    body = assert_error_shape(response, 400)
    assert set(body["details"]) == {"email", "company_name", "full_name", "password"}
    assert "email: This field is required." in body["message"]


def test_unknown_fields_are_rejected(api_client):
    response = api_client.post(
        "/api/customers/signup",
        {
            "email": "x@example.com",
            "company_name": "X",
            "full_name": "X Y",
            "password": "SecurePass123",
            "is_staff": True,
        },
        format="json",
    )
    body = assert_error_shape(response, 400)
    assert body["details"] == {"is_staff": ["Unknown field."]}


@pytest.mark.parametrize("payload", ["[]", '"text"', "42", "null", '{"email": NaN}'])
def test_non_object_or_non_standard_json_is_400(api_client, payload):
    response = api_client.post(
        "/api/customers/signup", data=payload, content_type="application/json"
    )
    assert_error_shape(response, 400)


def test_deeply_nested_json_is_400_not_500(api_client):
    payload = "[" * 100_000 + "]" * 100_000
    response = api_client.post(
        "/api/customers/signup", data=payload, content_type="application/json"
    )
    assert_error_shape(response, 400)


def test_oversized_body_is_413(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    payload = '{"email": "' + "a" * 2000 + '"}'
    response = api_client.post(
        "/api/customers/signup", data=payload, content_type="application/json"
    )
    body = assert_error_shape(response, 413)
    assert body["details"] == {"limit_bytes": 1000}


def test_form_encoded_body_is_415(api_client):
    response = api_client.post(
        "/api/customers/signup",
        data="email=a@b.co",
        content_type="application/x-www-form-urlencoded",
    )
    assert_error_shape(response, 415)


def test_unknown_route_is_json_404(api_client):
    assert_error_shape(api_client.get("/api/nothing-here"), 404)


def test_wrong_method_is_json_405(api_client):
    assert_error_shape(api_client.delete("/api/licenses/public-key"), 405)


def test_invalid_paging_is_400(staff_client):
    assert_error_shape(staff_client.get("/api/customers?limit=0"), 400)
    assert_error_shape(staff_client.get("/api/customers?page=abc"), 400)
    assert_error_shape(staff_client.get("/api/customers?limit=1000"), 400)
    assert_error_shape(staff_client.get("/api/customers?page=%C2%B2"), 400)


def test_odd_path_ids_are_404_not_500(staff_client):
    assert_error_shape(staff_client.get("/api/customers/cust_%00x"), 404)
    assert_error_shape(staff_client.get("/api/licenses/" + "x" * 300), 404)
