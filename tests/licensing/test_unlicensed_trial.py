"""The guide's Unlicensed Mode, "Trial Duration: 7 days": an instance without a valid license
gets the trial plan for its first 7 days (from its first start), then the unlicensed column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.plans import PLANS, UNLICENSED_TRIAL_DAYS
from licensing import verify

STARTED = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def test_verifier_copy_of_the_trial_plan_matches_the_catalogue():
    assert PLANS["trial"].features_dict() == verify.TRIAL_FEATURES
    assert PLANS["trial"].limits_dict() == verify.TRIAL_LIMITS
    assert verify.UNLICENSED_TRIAL_DAYS == UNLICENSED_TRIAL_DAYS == 7


@pytest.mark.parametrize(
    ("since_first_start", "plan"),
    [
        (timedelta(0), "trial"),
        (timedelta(days=3), "trial"),
        (timedelta(days=7) - timedelta(seconds=1), "trial"),
        (timedelta(days=7), "unlicensed"),
        (timedelta(days=30), "unlicensed"),
    ],
)
def test_no_license_is_trial_for_the_first_seven_days_then_unlicensed(since_first_start, plan):
    lic = verify.effective_license(
        None, {}, first_started_at=STARTED, now=STARTED + since_first_start
    )
    assert lic.plan == plan
    assert lic.licensed is False
    expected = PLANS[plan]
    assert lic.features == expected.features_dict()
    assert lic.limits == expected.limits_dict()
    if plan == "trial":
        assert lic.unlicensed_trial_ends_at == STARTED + timedelta(days=7)
        assert lic.reason == ("No license configured; unlicensed trial until 2026-11-08 08:00 UTC.")
    else:
        assert lic.unlicensed_trial_ends_at is None


def test_an_invalid_license_on_a_new_instance_also_gets_the_trial():
    lic = verify.effective_license(
        "not-a-jwt", {}, first_started_at=STARTED, now=STARTED + timedelta(days=1)
    )
    assert (lic.plan, lic.licensed) == ("trial", False)
    # the verification error first, then the trial
    assert lic.reason.startswith("Malformed token")
    assert lic.reason.endswith("; unlicensed trial until 2026-11-08 08:00 UTC.")


def test_without_a_first_start_time_the_fallback_is_unlicensed_at_once():
    lic = verify.effective_license(None, {})
    assert lic.plan == "unlicensed"
    assert lic.features["maxDevices"] == 2


def test_the_trial_obeys_the_device_limit_of_the_trial_plan():
    lic = verify.effective_license(None, {}, first_started_at=STARTED, now=STARTED)
    # the 10th device may be added, not an 11th
    assert verify.check_device_limit(lic, active_devices=9) is None
    refusal = verify.check_device_limit(lic, active_devices=10)
    assert refusal is not None
    assert refusal["details"]["maxDevices"] == 10


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        verify.effective_license(None, {}, first_started_at=datetime(2026, 11, 1))  # noqa: DTZ001 - on purpose
