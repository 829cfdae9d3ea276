"""Researcher pages of the modeling app, mounted under /personas/."""
from django.urls import path

from core.lazy_views import lazy_view

from . import views

app_name = "modeling"
# Scores, metrics, comparisons and calibrations compute with pandas and scipy: their module
# loads with the first such page (core/lazy_views.py), not in every worker and command.
scores = "modeling.score_views."

urlpatterns = [
    path("", views.persona_list, name="persona-list"),
    path("new/", views.persona_new, name="persona-new"),
    path("<int:pk>/", views.persona_detail, name="persona-detail"),
    path("<int:pk>/cancel/", views.persona_cancel, name="persona-cancel"),
    path("<int:pk>/loss.<str:fmt>", views.persona_loss_plot, name="persona-loss-plot"),
    path("<int:pk>/metrics/", lazy_view(scores + "persona_metrics_page"), name="persona-metrics"),
    path("<int:pk>/score/", lazy_view(scores + "persona_score"), name="persona-score"),
    path("<int:pk>/calibrate/", lazy_view(scores + "calibration_new"), name="calibration-new"),
    path("scores/<int:pk>/metrics.<str:fmt>", lazy_view(scores + "persona_metrics_plot"),
         name="persona-metrics-plot"),
    path("scores/<int:pk>/cancel/", lazy_view(scores + "score_table_cancel"), name="score-table-cancel"),
    path("scores/<int:pk>/download.<str:fmt>", lazy_view(scores + "score_table_download"),
         name="score-table-download"),
    path("compare/", lazy_view(scores + "persona_compare"), name="persona-compare"),
    path("compare/plot.<str:fmt>", lazy_view(scores + "persona_compare_plot"), name="persona-compare-plot"),
    path("compare/export.<str:fmt>", lazy_view(scores + "persona_compare_export"),
         name="persona-compare-export"),
    path("calibrations/<int:pk>/", lazy_view(scores + "calibration_detail"), name="calibration-detail"),
    path("calibrations/<int:pk>/plot.<str:fmt>", lazy_view(scores + "calibration_plot"),
         name="calibration-plot"),
    path("calibrations/<int:pk>/export.<str:fmt>", lazy_view(scores + "calibration_export"),
         name="calibration-export"),
]
