"""Reads of license history."""

from collections import Counter

from customers.models import Customer
from licensing.models import LicenseHistory
from licensing.services import ISSUE_ACTIONS


def license_history(*, customer: Customer) -> tuple[list[LicenseHistory], dict]:
    """All history rows, newest first, with the guide's statistics.

    As in the guide, `totalGenerations` counts the licenses signed and equals the sum of
    `byAction` and of `byPlan`; revocations and restores, which sign nothing, are counted
    apart in `otherEvents`.
    """
    rows = list(LicenseHistory.objects.filter(customer=customer))
    issued = [row for row in rows if row.action in ISSUE_ACTIONS]
    statistics = {
        "totalGenerations": len(issued),
        "byAction": dict(Counter(row.action for row in issued)),
        "byPlan": dict(Counter(row.plan for row in issued)),
        "otherEvents": dict(Counter(row.action for row in rows if row.action not in ISSUE_ACTIONS)),
    }
    return rows, statistics
