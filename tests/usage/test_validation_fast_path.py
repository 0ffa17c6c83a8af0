"""The msgspec fast path of report validation: what it accepts, DRF's serializer accepts
with the same validated data; what it does not decide goes to DRF (which words the 400)."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import RequestFactory
from rest_framework.parsers import JSONParser
from rest_framework.request import Request

from tests.usage.helpers import now_s, report_body
from usage.models import OPTIONAL_FIELDS

pytestmark = pytest.mark.django_db


@pytest.fixture
def serializers():
    """usage.serializers, imported once Django's URLs (and so DRF's views) are loaded."""
    from django.urls import resolve

    resolve("/api/usage/report")
    from usage import serializers

    return serializers


def _request(payload: dict):
    django_request = RequestFactory().post(
        "/x", data=json.dumps(payload), content_type="application/json"
    )
    return Request(django_request, parsers=[JSONParser()])


def _drf(serializer, payload: dict) -> dict:
    data = serializer(data=payload)
    assert data.is_valid(), data.errors
    return dict(data.validated_data)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="full"),
        pytest.param({"postgres_size_mb": 125.5}, id="size-float"),
        pytest.param({"postgres_size_mb": 7}, id="size-int"),
        pytest.param({"postgres_size_mb": 0.0004}, id="size-below-a-kB"),
        pytest.param({"reported_at": "<offset>"}, id="offset-time"),
        pytest.param({"reported_at": "<naive>"}, id="naive-time"),
        pytest.param({"started_at": "<naive>"}, id="started-at"),
        pytest.param({"report_id": "<hex>"}, id="uuid-hex"),
        pytest.param({"<device-only>": True}, id="device-only"),
    ],
)
def test_fast_path_agrees_with_the_serializer(instance, overrides, monkeypatch, serializers):
    body = report_body(instance.customer_id)
    at = now_s() - timedelta(minutes=3)
    for name, value in overrides.items():
        if name == "<device-only>":
            for field in OPTIONAL_FIELDS:
                del body[field]
        elif value == "<offset>":
            body[name] = at.astimezone(ZoneInfo("Europe/Berlin")).isoformat()
        elif value == "<naive>":
            body[name] = at.replace(tzinfo=None).isoformat()
        elif value == "<hex>":
            body[name] = body["report_id"].replace("-", "")
        else:
            body[name] = value
    expected = _drf(serializers.ReportInput, body)
    # the DRF serializer is not consulted on the fast path
    monkeypatch.setattr(serializers, "ReportInput", None)
    assert serializers.report_validate(_request(body)) == expected


def test_fast_path_batch_agrees_with_the_serializer(instance, monkeypatch, serializers):
    start = now_s() - timedelta(hours=1)
    reports = [report_body(instance.customer_id, at=start + timedelta(minutes=i)) for i in range(3)]
    del reports[1]["mqtt_bytes_sent"]
    expected = [dict(r) for r in _drf(serializers.BatchInput, {"reports": reports})["reports"]]
    monkeypatch.setattr(serializers, "BatchInput", None)
    assert serializers.batch_validate(_request({"reports": reports})) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("instance_id", " prod-1 "),  # DRF trims it: the fast path leaves that to DRF
        ("customer_id", "<own id padded>"),
        ("report_id", 12345),  # DRF reads an integer as a UUID
    ],
)
def test_inputs_the_fast_path_does_not_decide_still_get_drf_answers(
    instance, field, value, serializers
):
    body = report_body(instance.customer_id)
    body[field] = f" {instance.customer_id} " if value == "<own id padded>" else value
    assert serializers.report_validate(_request(body)) == _drf(serializers.ReportInput, body)


def test_form_encoded_body_is_left_to_drf(instance):
    response = instance.client.post(
        "/api/usage/report", data="a=1", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
