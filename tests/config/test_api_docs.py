"""The API docs page works offline: everything it loads comes from this service."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_api_docs_reference_no_external_host(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page)
    references += re.findall(r"""url\s*:\s*["']([^"']+)["']""", page)
    assert references, page
    external = [ref for ref in references if re.match(r"^(?:https?:)?//", ref)]
    assert external == []
    assert "cdn" not in page.lower()


def test_api_docs_assets_are_served_by_this_service(client):
    page = client.get("/api/docs/").content.decode()
    assets = re.findall(r"""(?:src|href)\s*=\s*["'](/static/[^"']+)["']""", page)
    assert any(asset.endswith(".js") for asset in assets), assets
    for asset in assets:
        response = client.get(asset)
        response.close()  # a streamed file
        assert response.status_code == 200, asset
