"""The Stripe simulator is a development tool outside the product: no domain code knows it,
and the production image does not contain it."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from tests.architecture import layers

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = [p for p in layers.PACKAGES if p not in ("stripe_simulator", "config")]


def _mentions_of_the_simulator() -> list[str]:
    found = []
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            # `manage.py serve` (development) starts it; that is its one door.
            if "management" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if re.search(r"simulat\w* stripe|stripe.?simulat", line, re.IGNORECASE):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_app_module_mentions_the_stripe_simulator():
    assert _mentions_of_the_simulator() == []


def test_the_production_image_leaves_the_simulator_and_tests_out():
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in ("stripe_simulator", "tests"):
        assert any(fnmatch.fnmatch(excluded, pattern) for pattern in patterns), excluded


def test_make_run_makes_the_catalogue_in_the_simulator_with_stripe_setup():
    serve = (ROOT / "customers" / "management" / "commands" / "serve.py").read_text()
    assert "-m stripe_simulator" in serve
    assert "manage.py stripe_setup --wait" in serve
