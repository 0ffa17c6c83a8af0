from django.urls import path  # noqa: F401 - routes are added with this app's endpoints

urlpatterns: list = []
