"""Researcher pages of the modeling app, mounted under /personas/."""
from django.urls import path

from . import views

app_name = "modeling"

urlpatterns = [
    path("", views.persona_list, name="persona-list"),
    path("new/", views.persona_new, name="persona-new"),
    path("<int:pk>/", views.persona_detail, name="persona-detail"),
    path("<int:pk>/cancel/", views.persona_cancel, name="persona-cancel"),
    path("<int:pk>/loss.<str:fmt>", views.persona_loss_plot, name="persona-loss-plot"),
]
