"""Fixtures of the Stripe tests live in tests/conftest.py (`stripe_sim`), shared with
the offboarding tests."""
