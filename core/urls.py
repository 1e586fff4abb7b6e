from django.contrib.auth import views as auth_views
from django.urls import path

from core import views
from governance.access import ANY_USER, PUBLIC, access

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path(
        "login/",
        access(GET=PUBLIC, POST=PUBLIC)(
            auth_views.LoginView.as_view(redirect_authenticated_user=True)
        ),
        name="login",
    ),
    path("logout/", access(POST=ANY_USER)(auth_views.LogoutView.as_view()), name="logout"),
]
