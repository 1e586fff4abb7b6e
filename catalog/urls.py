from django.urls import path

from catalog import views

app_name = "catalog"
urlpatterns = [
    path("items/", views.item_list, name="item_list"),
    path("items/<int:pk>/", views.item_detail, name="item_detail"),
    path("contexts/", views.context_list, name="context_list"),
    path("contexts/<int:pk>/", views.context_detail, name="context_detail"),
]
