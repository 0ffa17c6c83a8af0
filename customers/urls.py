from django.urls import path

from customers import api

urlpatterns = [
    path("customers/signup", api.SignupView.as_view(), name="customer-signup"),
    path("customers", api.CustomerListCreateView.as_view(), name="customer-list"),
    path("customers/<str:customer_id>", api.CustomerDetailView.as_view(), name="customer-detail"),
    path(
        "customers/<str:customer_id>/api-keys",
        api.ApiKeyListCreateView.as_view(),
        name="api-key-list",
    ),
    path(
        "customers/<str:customer_id>/api-keys/rotate",
        api.ApiKeyRotateView.as_view(),
        name="api-key-rotate",
    ),
    path(
        "customers/<str:customer_id>/api-keys/<str:prefix>",
        api.ApiKeyDetailView.as_view(),
        name="api-key-detail",
    ),
]
