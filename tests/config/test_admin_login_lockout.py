"""The admin login resists guessing: wrong passwords lock out the username and the client
address (django-axes), and the right password then does not log in until the cool-off."""

from __future__ import annotations

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password-42"


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", PASSWORD)


def _login(client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def _logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_thirty_wrong_passwords_then_the_right_one_does_not_log_in(client, staff_user, settings):
    answers = [_login(client, "boss", f"guess-{n}").status_code for n in range(30)]
    # the first AXES_FAILURE_LIMIT are ordinary failures, then the login is locked
    assert answers[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert set(answers[settings.AXES_FAILURE_LIMIT :]) == {429}

    response = _login(client, "boss", PASSWORD)
    assert response.status_code == 429
    assert not _logged_in(client)


def test_a_locked_username_stays_locked_from_another_address(client, staff_user, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "boss", f"guess-{n}", address="203.0.113.7")
    assert _login(client, "boss", PASSWORD, address="198.51.100.9").status_code == 429
    assert not _logged_in(client)


def test_one_address_guessing_many_usernames_is_locked_out(client, staff_user, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(client, f"someone-{n}", "guess", address="203.0.113.50")
    assert _login(client, "boss", PASSWORD, address="203.0.113.50").status_code == 429
    # another address, and the username that was never guessed, still log in
    assert _login(client, "boss", PASSWORD, address="198.51.100.9").status_code == 302
    assert _logged_in(client)


def test_a_right_password_before_the_limit_logs_in_and_resets_the_count(client, staff_user):
    for n in range(3):
        _login(client, "boss", f"guess-{n}")
    assert _login(client, "boss", PASSWORD).status_code == 302
    assert _logged_in(client)


def test_staff_can_lift_a_lockout(client, staff_user, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "boss", f"guess-{n}")
    call_command("axes_reset")
    assert _login(client, "boss", PASSWORD).status_code == 302
