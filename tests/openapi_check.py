"""Checks real API answers against the OpenAPI document (/api/schema/), as a client generated
from it would read them: the document's schema for that path, method and status, turned into
JSON Schema, with every documented object closed (an undocumented field is an error)."""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
from drf_spectacular.generators import SchemaGenerator


@functools.cache
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if "properties" in converted and "additionalProperties" not in converted:
        converted["additionalProperties"] = False
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def operation(path: str, method: str) -> tuple[str, dict]:
    """The documented operation for a concrete path (`/api/customers/cust_x` matches
    `/api/customers/{customer_id}`); literal segments win over parameters."""
    wanted = path.split("?")[0].strip("/").split("/")

    def matches(template: str) -> bool:
        segments = template.strip("/").split("/")
        return len(segments) == len(wanted) and all(
            segment.startswith("{") or segment == part
            for segment, part in zip(segments, wanted, strict=True)
        )

    candidates = [
        (template, item[method.lower()])
        for template, item in openapi()["paths"].items()
        if method.lower() in item and matches(template)
    ]
    assert candidates, f"{method} {path} is not in the OpenAPI document"
    return min(candidates, key=lambda candidate: candidate[0].count("{"))


def check_response(response, path: str, method: str) -> None:
    """Fail unless `response` is what the document says `method path` answers with."""
    template, op = operation(path, method)
    status = str(response.status_code)
    documented = op["responses"].get(status)
    assert documented is not None, f"{method} {template}: status {status} is not documented"
    content = documented.get("content", {}).get("application/json")
    assert content is not None, f"{method} {template} {status}: no JSON body documented"
    schema = {
        **_json_schema(content["schema"]),
        "components": _json_schema(openapi()["components"]),
    }
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(response.json()), key=str)
    assert not errors, f"{method} {template} {status}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
    )
