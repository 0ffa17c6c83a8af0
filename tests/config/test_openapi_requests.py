"""The OpenAPI document tells the truth about what requests the API takes: every request body
is closed (`additionalProperties: false`) and the API refuses a property it does not know
with a 400 naming it; every bounded query parameter's `minimum` and `maximum` are the bounds
the API enforces (one past either: 400), and one without a `maximum` is not refused for
being large."""

from __future__ import annotations

import pytest

from tests.helpers import staff_api_client
from tests.openapi_check import check_response, openapi
from tests.usage.helpers import report_body

pytestmark = pytest.mark.django_db

UNKNOWN = "zz_not_a_field"


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = openapi()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _objects(schema: dict, where: str = ""):
    """Every object schema in a request body, with where it sits (`reports[]` for the items
    of an array property `reports`)."""
    schema = _resolve(schema)
    if schema.get("type") == "object" or "properties" in schema:
        yield where, schema
        for name, child in schema.get("properties", {}).items():
            yield from _objects(child, f"{where}.{name}".lstrip("."))
    if schema.get("type") == "array":
        yield from _objects(schema["items"], f"{where}[]")
    for key in ("allOf", "oneOf", "anyOf"):
        for child in schema.get(key, []):
            yield from _objects(child, where)


def _bodies():
    for path, item in openapi()["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {})
            for media, body in content.items():
                yield method, path, media, body["schema"]


BODY_OPERATIONS = sorted({(method, path) for method, path, _, _ in _bodies()})
# A body nested inside another one, posted with the unknown property inside it below.
NESTED = {("post", "/api/usage/report/batch", "reports[]")}


def test_every_request_body_is_closed():
    assert len(BODY_OPERATIONS) >= 15
    nested = set()
    for method, path, media, schema in _bodies():
        assert media == "application/json", (method, path, media)
        for where, node in _objects(schema):
            assert node.get("additionalProperties") is False, (method, path, where or "body")
            if where:
                nested.add((method, path, where))
    assert nested == NESTED


@pytest.fixture
def customer(signup):
    return signup()


def _client_and_path(customer, method: str, template: str):
    """Credentials that pass the operation's auth rule, and the path for this customer."""
    op = openapi()["paths"][template][method]
    accepted = {name for requirement in op.get("security", []) for name in requirement}
    client = customer.client if accepted == {"customerApiKey"} else staff_api_client()
    path = template.replace("{customer_id}", customer.id)
    return client, path


@pytest.mark.parametrize(("method", "template"), BODY_OPERATIONS)
def test_an_unknown_property_is_refused_naming_it(customer, method, template):
    client, path = _client_and_path(customer, method, template)
    response = getattr(client, method)(path, {UNKNOWN: 1}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["details"] == {UNKNOWN: ["Unknown field."]}
    assert UNKNOWN in response.json()["message"]
    check_response(response, path, method)


def test_an_unknown_property_of_a_batched_report_is_refused_naming_it(customer):
    path = "/api/usage/report/batch"
    reports = [report_body(customer.id), {**report_body(customer.id), UNKNOWN: 1}]
    response = customer.client.post(path, {"reports": reports}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["details"] == {"reports": {"1": {UNKNOWN: ["Unknown field."]}}}
    assert f"reports.1.{UNKNOWN}" in response.json()["message"]
    check_response(response, path, "post")


def test_an_empty_body_still_runs_an_operation_that_takes_no_properties():
    response = staff_api_client().post("/api/admin/execute-deletions", {}, format="json")
    assert response.status_code == 200, response.content


def _integer_query_parameters():
    for path, item in openapi()["paths"].items():
        for method, op in item.items():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "query" and parameter["schema"].get("type") == "integer":
                    yield method, path, parameter["name"], parameter["schema"]


INTEGER_PARAMETERS = sorted(
    (method, path, name) for method, path, name, _ in _integer_query_parameters()
)


def test_the_paged_and_windowed_reads_state_their_bounds():
    bounds = {
        (method, path, name): (schema.get("minimum"), schema.get("maximum"))
        for method, path, name, schema in _integer_query_parameters()
    }
    assert bounds == {
        ("get", "/api/customers", "page"): (1, None),
        ("get", "/api/customers", "limit"): (1, 100),
        ("get", "/api/usage/{customer_id}", "days"): (1, 366),
        ("get", "/api/usage/{customer_id}", "page"): (1, None),
        ("get", "/api/usage/{customer_id}", "limit"): (1, 100),
    }


@pytest.mark.parametrize(("method", "template", "name"), INTEGER_PARAMETERS)
def test_a_query_parameter_is_refused_exactly_outside_its_documented_bounds(
    customer, method, template, name
):
    schema = next(
        s for m, p, n, s in _integer_query_parameters() if (m, p, n) == (method, template, name)
    )
    client, path = _client_and_path(customer, method, template)

    def answer(value: int):
        response = getattr(client, method)(path, {name: value})
        check_response(response, path, method)
        return response

    assert "minimum" in schema, "every integer parameter has a lower bound"
    low = schema["minimum"]
    refused = answer(low - 1)
    assert refused.status_code == 400, refused.content
    assert set(refused.json()["details"]) == {name}
    assert answer(low).status_code == 200
    if "maximum" in schema:
        high = schema["maximum"]
        assert answer(high).status_code == 200
        refused = answer(high + 1)
        assert refused.status_code == 400, refused.content
        assert set(refused.json()["details"]) == {name}
    else:
        # unbounded above: a large value is not refused as invalid (a page past the last
        # one is not found)
        assert answer(10**6).status_code in (200, 404)
