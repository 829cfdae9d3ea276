"""Researcher pages of simulation runs, mounted under /simulations/."""
from django.urls import path

from . import views

app_name = "simulation"

urlpatterns = [
    path("", views.run_list, name="run-list"),
    path("new/", views.run_new, name="run-new"),
    path("<int:pk>/", views.run_detail, name="run-detail"),
    path("<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("<int:pk>/figures/<str:kind>.<str:fmt>", views.run_figure, name="run-figure"),
    path("<int:pk>/tables/<str:table>.<str:fmt>", views.run_table, name="run-table"),
    path("<int:pk>/steps.parquet", views.run_steps, name="run-steps"),
]
