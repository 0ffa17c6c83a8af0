"""Workflows that span apps: signup, plan and status changes, offboarding, and their tasks.

Lifecycle calls the domain apps' services; the interfaces (API views, webhooks, admin,
commands) call lifecycle for anything that touches more than one app.
"""
