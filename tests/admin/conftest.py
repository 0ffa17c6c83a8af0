"""Fixtures of the back-office tests: the roles as the data migration makes them, and admin
clients logged in as a user of each role."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.test import Client

PASSWORD = "a-long-staff-password-1"  # noqa: S105


@pytest.fixture
def roles(db):
    """The Support and Finance groups, made by customers/migrations/0004_staff_roles (the
    test database is built without running migrations, so its function is run here)."""
    migration = importlib.import_module("customers.migrations.0004_staff_roles")
    migration.create_roles(apps, None)
    return {group.name: group for group in Group.objects.all()}


@pytest.fixture
def staff_user(roles, django_user_model):
    """`staff_user(role)`: a staff user in the group `role` ("Support", "Finance"), a
    superuser for "superuser", or staff without a role for None."""

    def make(role: str | None, username: str | None = None):
        name = username or (role or "norole").lower()
        if role == "superuser":
            return django_user_model.objects.create_superuser(name, f"{name}@example.com", PASSWORD)
        user = django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
        if role:
            user.groups.add(roles[role])
        return user

    return make


@pytest.fixture
def admin_as(staff_user):
    """`admin_as(role)`: a test client logged in to the admin as a user of `role`."""

    def login(role: str | None) -> Client:
        client = Client()
        client.force_login(staff_user(role))
        return client

    return login
