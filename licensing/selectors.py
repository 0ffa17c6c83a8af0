"""Reads of license history."""

from collections import Counter

from customers.models import Customer
from licensing.models import LicenseHistory
from licensing.services import ISSUE_ACTIONS


def license_history(*, customer: Customer) -> tuple[list[LicenseHistory], dict]:
    """All history rows, newest first, with the guide's statistics."""
    rows = list(LicenseHistory.objects.filter(customer=customer))
    issued = [row for row in rows if row.action in ISSUE_ACTIONS]
    statistics = {
        "totalGenerations": len(issued),
        "byAction": dict(Counter(row.action for row in rows)),
        "byPlan": dict(Counter(row.plan for row in issued)),
    }
    return rows, statistics
