"""The import contract (tests/architecture/layers.py) holds, and it would catch a break."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.architecture import layers

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if parent != Path("."):
                (root / parent / "__init__.py").touch()
        path.write_text(source)
    return root


def _messages(root: Path) -> list[str]:
    return [str(v) for v in layers.check(root)]


def test_import_contract_holds_for_the_project():
    assert layers.check(ROOT) == []


def test_import_contract_catches_an_upward_import_added_to_the_project(tmp_path):
    # given a copy of the project with one fixture module that imports upward
    for package in layers.PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    (tmp_path / "customers" / "upward_fixture.py").write_text(
        "from lifecycle.signup import customer_signup\n"
    )

    # then the contract reports exactly that import
    assert _messages(tmp_path) == [
        "customers/upward_fixture.py:1: customers.upward_fixture imports lifecycle.signup: "
        "domain code may not import lifecycle (it sits above the domain apps)"
    ]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "core/errors.py": "from customers.models import Customer\n",
                "customers/models.py": "",
            },
            "core.errors imports customers.models: core imports nothing of ours",
            id="core-imports-an-app",
        ),
        pytest.param(
            {
                "subscriptions/services.py": "import licensing.services\n",
                "licensing/services.py": "",
            },
            "subscriptions may not import licensing",
            id="domain-app-imports-a-higher-app",
        ),
        pytest.param(
            {
                "usage/services.py": "from deployments import services\n",
                "deployments/services.py": "",
            },
            "usage may not import deployments",
            id="usage-imports-deployments",
        ),
        pytest.param(
            {
                "licensing/services.py": "from customers.auth import actor_of\n",
                "customers/auth.py": "",
            },
            "domain code may not import an interface module",
            id="domain-imports-an-interface",
        ),
        pytest.param(
            {"deployments/tasks.py": "from config.celery import app\n", "config/celery.py": ""},
            "domain code may not import an interface module",
            id="domain-imports-config",
        ),
        pytest.param(
            {
                "subscriptions/services.py": "from stripe_simulator import start\n",
                "stripe_simulator/__init__.py": "",
            },
            "the Stripe simulator is a separate program",
            id="app-imports-the-simulator",
        ),
        pytest.param(
            {"stripe_simulator/server.py": "from core.plans import PLANS\n", "core/plans.py": ""},
            "the Stripe simulator is a separate program",
            id="simulator-imports-an-app",
        ),
        pytest.param(
            {
                "deployments/services.py": "def enqueue():\n    from deployments import tasks\n",
                "deployments/tasks.py": "",
            },
            "inside a function without a comment saying why",
            id="unexplained-function-local-import",
        ),
        pytest.param(
            {
                "deployments/services.py": (
                    "def enqueue():\n"
                    "    # deferred: tasks imports this module\n"
                    "    from deployments import tasks\n"
                ),
                "deployments/tasks.py": "from deployments import services\n",
            },
            "import cycle among deployments.services, deployments.tasks",
            id="cycle-hidden-in-a-function",
        ),
        pytest.param(
            {
                "lifecycle/offboarding.py": "from .tasks import send\n",
                "lifecycle/tasks.py": "from lifecycle.offboarding import run\n",
            },
            "import cycle among lifecycle.offboarding, lifecycle.tasks",
            id="cycle-through-a-relative-import",
        ),
    ],
)
def test_import_contract_catches(tmp_path, files, expected):
    messages = _messages(_tree(tmp_path, files))
    assert any(expected in message for message in messages), messages


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(
            {"customers/api.py": "from lifecycle import signup\n", "lifecycle/signup.py": ""},
            id="interface-calls-lifecycle",
        ),
        pytest.param(
            {
                "lifecycle/signup.py": "from deployments.services import deployment_queue\n",
                "deployments/services.py": "from licensing.services import license_issue\n",
                "licensing/services.py": "from core.audit import audit_record\n",
                "core/audit.py": "",
            },
            id="lifecycle-and-domain-import-downwards",
        ),
        pytest.param(
            {
                "customers/apps.py": (
                    "def ready():\n    from customers import schema  # registers extensions\n"
                ),
                "customers/schema.py": "",
            },
            id="explained-function-local-import",
        ),
    ],
)
def test_import_contract_allows(tmp_path, files):
    assert _messages(_tree(tmp_path, files)) == []
