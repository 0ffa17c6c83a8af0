"""The pages Stripe Checkout returns customers to."""

from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def checkout_success(request):
    session_id = request.GET.get("session_id", "")[:200]
    return render(request, "checkout/success.html", {"session_id": session_id})


@require_GET
def checkout_cancel(request):
    return render(request, "checkout/cancel.html")
