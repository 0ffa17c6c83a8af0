"""The rules of the Stripe API the simulator keeps: parameters, ``expand[]``, pagination,
search, idempotency, unknown endpoints, and its state across restarts."""

from __future__ import annotations

import pytest
import stripe

from stripe_simulator import start_simulator
from tests.stripe_simulator.support import (
    DAY,
    charge_id_of,
    price,
    subscribe,
)


def test_an_unimplemented_endpoint_is_a_404_naming_it(sim):
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe.Coupon.list()

    assert excinfo.value.http_status == 404
    assert "Unrecognized request URL (GET: /v1/coupons)" in excinfo.value.user_message


@pytest.mark.parametrize(
    ("create", "param"),
    [
        pytest.param(lambda: stripe.Customer.create(emial="x@example.com"), "emial", id="top"),
        pytest.param(
            lambda: stripe.Price.create(
                product="prod_x",
                unit_amount=1,
                currency="usd",
                recurring={"interval": "month", "every": "2"},
            ),
            "recurring[every]",
            id="nested",
        ),
        pytest.param(
            lambda: stripe.checkout.Session.create(
                mode="subscription", line_items=[{"price": "price_x", "qty": 1}]
            ),
            "line_items[0][qty]",
            id="in-a-list",
        ),
    ],
)
def test_an_unknown_parameter_is_stripes_400(sim, create, param):
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        create()

    assert excinfo.value.http_status == 400
    assert (excinfo.value.code, excinfo.value.param) == ("parameter_unknown", param)
    assert excinfo.value.user_message == f"Received unknown parameter: {param}"


def test_a_parameter_the_simulator_does_not_model_is_refused_not_ignored(sim):
    # given a parameter Stripe knows (automatic_tax) but the simulator does not implement
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe.Subscription.create(customer="cus_x", automatic_tax={"enabled": True})

    assert excinfo.value.param == "automatic_tax"
    assert "does not model" in excinfo.value.user_message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda: stripe.Customer.list(expand=["invoice_settings"]),
            "This property cannot be expanded (invoice_settings).",
            id="not-expandable",
        ),
        pytest.param(
            lambda: stripe.Invoice.list(expand=["customer"]),
            "This property cannot be expanded (customer). You may want to try expanding "
            "'data.customer' instead.",
            id="list-without-data",
        ),
        pytest.param(
            lambda: stripe.Charge.list(expand=["data.nothing"]),
            "This property cannot be expanded (data.nothing).",
            id="unknown-field",
        ),
        pytest.param(
            lambda: stripe.Refund.list(expand=["data.charge.customer.default_source.owner"]),
            "You cannot expand more than 4 levels of a property.",
            id="too-deep",
        ),
    ],
)
def test_an_expand_the_version_does_not_allow_is_a_400(sim, call, message):
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        call()

    assert excinfo.value.http_status == 400
    assert message in excinfo.value.user_message


def test_expand_inlines_ids_and_includable_fields(sim):
    _, subscription = subscribe(sim, amount=2900)

    invoice = stripe.Invoice.retrieve(
        subscription.latest_invoice, expand=["customer", "payments.data.payment.payment_intent"]
    )
    plain = stripe.Invoice.retrieve(subscription.latest_invoice)

    assert invoice.customer.email == "owner@example.com"
    payment = invoice.payments.data[0]
    assert (payment.amount_paid, payment.status) == (2900, "paid")
    assert payment.payment.payment_intent.status == "succeeded"
    assert "payments" not in plain.last_response.data  # only when expanded


def test_ending_before_pages_backwards_and_auto_paging_ends(sim):
    ids = [stripe.Customer.create(email=f"c{n}@example.com").id for n in range(7)]  # oldest 1st

    page = stripe.Customer.list(limit=2, ending_before=ids[2])
    backwards = [
        c.id for c in stripe.Customer.list(limit=2, ending_before=ids[0]).auto_paging_iter()
    ]
    forwards = [c.id for c in stripe.Customer.list(limit=3).auto_paging_iter()]

    assert [c.id for c in page.data] == [ids[4], ids[3]]  # newest first, right before the cursor
    assert page.has_more is True
    assert backwards == ids[1:]
    assert forwards == ids[::-1]


def test_customer_search(sim):
    ann = stripe.Customer.create(email="ann@example.com", name="Ann", metadata={"tier": "gold"})
    stripe.Customer.create(email="bob@example.com", name="Bob", metadata={"tier": "gold"})
    stripe.Customer.create(email="cy@example.com", name="Cy")

    by_email = stripe.Customer.search(query="email:'ANN@example.com'")
    gold = stripe.Customer.search(query="metadata['tier']:'gold' AND -name:'Bob'")
    pages = [
        c.email for c in stripe.Customer.search(query="email~'example'", limit=2).auto_paging_iter()
    ]

    assert [c.id for c in by_email.data] == [ann.id]
    assert by_email.last_response.data["object"] == "search_result"
    assert [c.id for c in gold.data] == [ann.id]
    assert sorted(pages) == ["ann@example.com", "bob@example.com", "cy@example.com"]
    with pytest.raises(stripe.InvalidRequestError, match="AND and OR cannot be combined"):
        stripe.Customer.search(query="name:'a' AND name:'b' OR name:'c'")


def test_refund_idempotency_key_replays_same_refund(sim):
    _, subscription = subscribe(sim, amount=1000)
    charge_id = charge_id_of(subscription.latest_invoice)

    first = stripe.Refund.create(charge=charge_id, amount=300, idempotency_key="refund-1")
    again = stripe.Refund.create(charge=charge_id, amount=300, idempotency_key="refund-1")

    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert [r.id for r in stripe.Refund.list(charge=charge_id)] == [first.id]
    assert stripe.Charge.retrieve(charge_id).amount_refunded == 300
    with pytest.raises(stripe.IdempotencyError):
        stripe.Refund.create(charge=charge_id, amount=400, idempotency_key="refund-1")


def test_idempotency_replays_the_first_result_even_an_error(sim):
    _, subscription = subscribe(sim, amount=1000)
    charge_id = charge_id_of(subscription.latest_invoice)

    with pytest.raises(stripe.InvalidRequestError, match="greater than unrefunded"):
        stripe.Refund.create(charge=charge_id, amount=5000, idempotency_key="too-much")
    # the charge changes meanwhile, but the key's first result is what comes back
    with pytest.raises(stripe.InvalidRequestError, match="greater than unrefunded") as again:
        stripe.Refund.create(charge=charge_id, amount=5000, idempotency_key="too-much")

    assert again.value.headers["Idempotent-Replayed"] == "true"


def test_idempotency_keeps_no_result_of_a_request_refused_by_validation(sim):
    customer = stripe.Customer.create(email="v@example.com")
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter"):
        stripe.Customer.modify(customer.id, nmae="Vee", idempotency_key="fix-typo")

    fixed = stripe.Customer.modify(customer.id, name="Vee", idempotency_key="fix-typo")

    assert fixed.name == "Vee"


def test_idempotency_key_on_another_path_is_an_idempotency_error(sim):
    stripe.Customer.create(email="p@example.com", idempotency_key="shared")

    with pytest.raises(stripe.IdempotencyError):
        stripe.Product.create(name="P", idempotency_key="shared")


def test_idempotency_key_expires_after_24_hours_of_simulated_time(sim):
    sim.freeze_clock()
    first = stripe.Customer.create(email="e@example.com", idempotency_key="daily")
    sim.advance_clock(DAY - 1)
    replayed = stripe.Customer.create(email="e@example.com", idempotency_key="daily")
    sim.advance_clock(1)

    fresh = stripe.Customer.create(email="e@example.com", idempotency_key="daily")

    assert replayed.id == first.id
    assert fresh.id != first.id


def test_fail_next_after_commit_retry_returns_original_refund(sim):
    _, subscription = subscribe(sim, amount=1000)
    charge_id = charge_id_of(subscription.latest_invoice)
    sim.fail_next("/v1/refunds", after=True)

    with pytest.raises(stripe.APIError):
        stripe.Refund.create(charge=charge_id, amount=250, idempotency_key="lost-reply")
    retried = stripe.Refund.create(charge=charge_id, amount=250, idempotency_key="lost-reply")

    assert retried.amount == 250
    assert stripe.Charge.retrieve(charge_id).amount_refunded == 250


def test_a_state_file_keeps_everything_across_a_restart(tmp_path, monkeypatch):
    # given a simulator with a state file, a customer, a price, an idempotent request, a clock
    path = tmp_path / "sim" / "state.json"
    first = start_simulator(state_file=path)
    monkeypatch.setattr(stripe, "api_key", "sk_test_state")
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    monkeypatch.setattr(stripe, "api_base", first.base_url)
    customer = stripe.Customer.create(email="kept@example.com", idempotency_key="once")
    kept_price = price(1500, "kept_monthly")
    first.advance_clock(3 * 3600)
    clock = first.now()
    first.stop()

    # when it starts again from the same file
    second = start_simulator(state_file=path)
    monkeypatch.setattr(stripe, "api_base", second.base_url)
    try:
        # then it knows them all, and replays the key
        assert stripe.Customer.retrieve(customer.id).email == "kept@example.com"
        assert [p.id for p in stripe.Price.list(lookup_keys=["kept_monthly"])] == [kept_price.id]
        again = stripe.Customer.create(email="kept@example.com", idempotency_key="once")
        assert again.id == customer.id
        assert second.now() >= clock
    finally:
        second.stop()
    assert (path.parent / ".gitignore").read_text().splitlines()[-1] == "*"


def test_without_a_state_file_each_start_is_empty(monkeypatch):
    first = start_simulator()
    monkeypatch.setattr(stripe, "api_key", "sk_test_state")
    monkeypatch.setattr(stripe, "api_base", first.base_url)
    customer = stripe.Customer.create(email="gone@example.com")
    first.stop()

    second = start_simulator()
    monkeypatch.setattr(stripe, "api_base", second.base_url)
    try:
        with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
            stripe.Customer.retrieve(customer.id)
    finally:
        second.stop()
