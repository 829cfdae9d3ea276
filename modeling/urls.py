"""Researcher pages of the modeling app, mounted under /personas/."""
from django.urls import path

from . import score_views, views

app_name = "modeling"

urlpatterns = [
    path("", views.persona_list, name="persona-list"),
    path("new/", views.persona_new, name="persona-new"),
    path("<int:pk>/", views.persona_detail, name="persona-detail"),
    path("<int:pk>/cancel/", views.persona_cancel, name="persona-cancel"),
    path("<int:pk>/loss.<str:fmt>", views.persona_loss_plot, name="persona-loss-plot"),
    # Scores, metrics, comparison and calibration (modeling/score_views.py)
    path("<int:pk>/metrics/", score_views.persona_metrics_page, name="persona-metrics"),
    path("<int:pk>/score/", score_views.persona_score, name="persona-score"),
    path("<int:pk>/calibrate/", score_views.calibration_new, name="calibration-new"),
    path("scores/<int:pk>/metrics.<str:fmt>", score_views.persona_metrics_plot,
         name="persona-metrics-plot"),
    path("scores/<int:pk>/cancel/", score_views.score_table_cancel, name="score-table-cancel"),
    path("scores/<int:pk>/download.<str:fmt>", score_views.score_table_download,
         name="score-table-download"),
    path("compare/", score_views.persona_compare, name="persona-compare"),
    path("compare/plot.<str:fmt>", score_views.persona_compare_plot, name="persona-compare-plot"),
    path("compare/export.<str:fmt>", score_views.persona_compare_export,
         name="persona-compare-export"),
    path("calibrations/<int:pk>/", score_views.calibration_detail, name="calibration-detail"),
    path("calibrations/<int:pk>/plot.<str:fmt>", score_views.calibration_plot,
         name="calibration-plot"),
    path("calibrations/<int:pk>/export.<str:fmt>", score_views.calibration_export,
         name="calibration-export"),
]
