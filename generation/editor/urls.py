"""The editor pages, mounted at the site root."""
from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.compose, name="compose"),
    path("compose/generate", views.compose_generate, name="compose-generate"),
    path("history", views.history, name="history"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
