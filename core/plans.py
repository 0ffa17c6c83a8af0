"""The plan catalogue: the one place that says what each plan gives and costs.

Plain Python with no Django import, so scripts and the license verifier's tests can
read it too. Numbers the guide gives are marked (guide); the rest are our choice
and are written down in the README's plan table.

Encoding of "unlimited": the integer -1 (UNLIMITED), in every limit and feature
count, in the license JWT too. Instances must treat any negative value as no limit;
`licensing.verify.check_device_limit` does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

UNLIMITED = -1

PLAN_TRIAL = "trial"
PLAN_STARTER = "starter"
PLAN_PROFESSIONAL = "professional"
PLAN_ENTERPRISE = "enterprise"
PLAN_UNLICENSED = "unlicensed"


@dataclass(frozen=True)
class Features:
    maxDevices: int  # noqa: N815 - license JWT field names are the guide's camelCase
    dataRetentionDays: int  # noqa: N815
    canExportData: bool  # noqa: N815
    hasAdvancedAlerts: bool  # noqa: N815
    hasApiAccess: bool  # noqa: N815
    hasMqttAccess: bool  # noqa: N815
    hasCustomBranding: bool  # noqa: N815
    canExecuteJobs: bool  # noqa: N815
    canScheduleJobs: bool  # noqa: N815
    hasRemoteAccess: bool  # noqa: N815
    hasOtaUpdates: bool  # noqa: N815
    hasCustomDashboards: bool  # noqa: N815


@dataclass(frozen=True)
class Limits:
    maxUsers: int  # noqa: N815
    maxAlertRules: int  # noqa: N815
    maxDashboards: int  # noqa: N815
    maxJobTemplates: int  # noqa: N815


@dataclass(frozen=True)
class Plan:
    name: str
    display_name: str
    rank: int  # orders plans so a change can be called an upgrade or a downgrade
    price_cents: int  # monthly, USD
    features: Features
    limits: Limits
    included_traffic_gb: int  # MQTT + HTTP together per month
    included_storage_gb: int
    included_api_calls: int  # per month
    stripe_lookup_key: str = ""

    def features_dict(self) -> dict:
        return asdict(self.features)

    def limits_dict(self) -> dict:
        return asdict(self.limits)


# Overage prices (guide, "Consumption Billing"), in USD.
OVERAGE_MQTT_PER_GB = Decimal("0.10")
OVERAGE_HTTP_PER_GB = Decimal("0.15")
OVERAGE_STORAGE_PER_GB_MONTH = Decimal("0.20")
OVERAGE_API_PER_1000_CALLS = Decimal("0.50")
OVERAGE_DEVICE_PER_MONTH = Decimal("2.00")

# Trial length of an instance running with no license at all (guide, Unlicensed Mode).
UNLICENSED_TRIAL_DAYS = 7

PLANS: dict[str, Plan] = {
    PLAN_TRIAL: Plan(
        name=PLAN_TRIAL,
        display_name="Trial",
        rank=0,
        price_cents=0,
        features=Features(
            maxDevices=10,  # guide
            dataRetentionDays=30,  # guide
            canExportData=True,
            hasAdvancedAlerts=False,  # guide
            hasApiAccess=True,
            hasMqttAccess=True,
            hasCustomBranding=False,  # guide
            canExecuteJobs=True,
            canScheduleJobs=False,
            hasRemoteAccess=True,
            hasOtaUpdates=False,
            hasCustomDashboards=False,
        ),
        limits=Limits(maxUsers=2, maxAlertRules=10, maxDashboards=3, maxJobTemplates=5),
        included_traffic_gb=10,
        included_storage_gb=5,
        included_api_calls=100_000,
    ),
    PLAN_STARTER: Plan(
        name=PLAN_STARTER,
        display_name="Iotistic Starter",
        rank=1,
        price_cents=2900,  # guide
        features=Features(
            maxDevices=10,  # guide
            dataRetentionDays=30,  # guide
            canExportData=True,  # guide: all plans
            hasAdvancedAlerts=False,  # guide
            hasApiAccess=True,  # guide: all plans
            hasMqttAccess=True,  # guide: all plans
            hasCustomBranding=False,  # guide
            canExecuteJobs=True,  # guide: all plans
            canScheduleJobs=False,  # guide: Professional+
            hasRemoteAccess=True,  # guide: all plans
            hasOtaUpdates=False,  # guide: Professional+
            hasCustomDashboards=False,  # guide: Professional+
        ),
        limits=Limits(maxUsers=5, maxAlertRules=25, maxDashboards=5, maxJobTemplates=10),
        included_traffic_gb=10,  # guide
        included_storage_gb=5,  # guide
        included_api_calls=100_000,
        stripe_lookup_key="iotistic_starter_monthly",
    ),
    PLAN_PROFESSIONAL: Plan(
        name=PLAN_PROFESSIONAL,
        display_name="Iotistic Professional",
        rank=2,
        price_cents=9900,  # guide
        features=Features(
            maxDevices=50,  # guide
            dataRetentionDays=365,  # guide
            canExportData=True,
            hasAdvancedAlerts=True,  # guide
            hasApiAccess=True,
            hasMqttAccess=True,
            hasCustomBranding=False,  # guide
            canExecuteJobs=True,
            canScheduleJobs=True,
            hasRemoteAccess=True,
            hasOtaUpdates=True,
            hasCustomDashboards=True,
        ),
        limits=Limits(maxUsers=15, maxAlertRules=100, maxDashboards=20, maxJobTemplates=50),
        included_traffic_gb=100,  # guide
        included_storage_gb=50,  # guide
        included_api_calls=1_000_000,
        stripe_lookup_key="iotistic_professional_monthly",
    ),
    PLAN_ENTERPRISE: Plan(
        name=PLAN_ENTERPRISE,
        display_name="Iotistic Enterprise",
        rank=3,
        price_cents=29900,  # guide ("Custom" in the table; 29900 in the Stripe setup)
        features=Features(
            maxDevices=UNLIMITED,  # guide
            dataRetentionDays=UNLIMITED,  # guide
            canExportData=True,
            hasAdvancedAlerts=True,
            hasApiAccess=True,
            hasMqttAccess=True,
            hasCustomBranding=True,  # guide
            canExecuteJobs=True,
            canScheduleJobs=True,
            hasRemoteAccess=True,
            hasOtaUpdates=True,
            hasCustomDashboards=True,
        ),
        limits=Limits(
            maxUsers=UNLIMITED,  # guide
            maxAlertRules=UNLIMITED,
            maxDashboards=UNLIMITED,
            maxJobTemplates=UNLIMITED,
        ),
        included_traffic_gb=UNLIMITED,
        included_storage_gb=UNLIMITED,
        included_api_calls=UNLIMITED,
        stripe_lookup_key="iotistic_enterprise_monthly",
    ),
    PLAN_UNLICENSED: Plan(
        name=PLAN_UNLICENSED,
        display_name="Unlicensed",
        rank=-1,
        price_cents=0,
        features=Features(
            maxDevices=2,  # guide
            dataRetentionDays=7,
            canExportData=False,  # guide
            hasAdvancedAlerts=False,
            hasApiAccess=False,
            hasMqttAccess=True,
            hasCustomBranding=False,
            canExecuteJobs=True,  # guide
            canScheduleJobs=False,  # guide
            hasRemoteAccess=True,  # guide
            hasOtaUpdates=False,  # guide
            hasCustomDashboards=False,
        ),
        limits=Limits(maxUsers=1, maxAlertRules=0, maxDashboards=1, maxJobTemplates=0),
        included_traffic_gb=0,
        included_storage_gb=0,
        included_api_calls=0,
    ),
}

# Plans a customer can subscribe to through Stripe.
PAID_PLANS = (PLAN_STARTER, PLAN_PROFESSIONAL, PLAN_ENTERPRISE)
# Plans staff may put a customer on by hand (`manage.py customer upgrade`).
ASSIGNABLE_PLANS = (PLAN_TRIAL, *PAID_PLANS)
# A signup's subscription is on this plan with status `trialing` (guide's signup response);
# while trialing, the license grants the trial plan's features and limits.
SIGNUP_PLAN = PLAN_STARTER
# Subscription statuses under which the subscribed plan is granted (past_due: grace period).
ENTITLED_STATUSES = ("active", "past_due")


def get_plan(name: str) -> Plan:
    try:
        return PLANS[name]
    except KeyError:
        raise ValueError(f"Unknown plan {name!r}; known: {', '.join(PLANS)}") from None


def entitled_plan(*, plan: str, status: str) -> Plan:
    """What a subscription in `status` on `plan` is entitled to right now.

    Trialing gets the trial plan; active and past_due get their plan; anything else
    (canceled, unpaid, incomplete) gets the unlicensed fallback.
    """
    if status == "trialing":
        return PLANS[PLAN_TRIAL]
    if status in ENTITLED_STATUSES:
        return get_plan(plan)
    return PLANS[PLAN_UNLICENSED]
