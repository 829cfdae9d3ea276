"""Researcher pages of simulation runs, mounted under /simulations/."""
from django.urls import path

from core.lazy_views import lazy_view

app_name = "simulation"
# Runs are created, summarised and served with numpy, pandas and the engine: the pages'
# module loads with the first of them (core/lazy_views.py), not in every worker and command.
pages = "simulation.views."

urlpatterns = [
    path("", lazy_view(pages + "run_list"), name="run-list"),
    path("new/", lazy_view(pages + "run_new"), name="run-new"),
    path("<int:pk>/", lazy_view(pages + "run_detail"), name="run-detail"),
    path("<int:pk>/cancel/", lazy_view(pages + "run_cancel"), name="run-cancel"),
    path("<int:pk>/figures/<str:kind>.<str:fmt>", lazy_view(pages + "run_figure"), name="run-figure"),
    path("<int:pk>/tables/<str:table>.<str:fmt>", lazy_view(pages + "run_table"), name="run-table"),
    path("<int:pk>/steps.parquet", lazy_view(pages + "run_steps"), name="run-steps"),
]
