"""Admin pages for personas, score tables and calibrations (read mostly: jobs write them)."""
from django.contrib import admin

from .models import Calibration, Persona, ScoreTable


@admin.register(Persona)
class PersonaAdmin(admin.ModelAdmin):
    list_display = ("name", "base_model", "target_framing", "alpha", "dataset", "is_base",
                    "status", "progress", "created")
    list_filter = ("status", "target_framing", "is_base")
    search_fields = ("name", "base_model")
    readonly_fields = ("created", "started", "finished", "loss_curve", "provenance", "task_id")


@admin.register(ScoreTable)
class ScoreTableAdmin(admin.ModelAdmin):
    list_display = ("persona", "dataset", "split", "rows", "status", "created")
    list_filter = ("status", "split")
    readonly_fields = ("created", "started", "finished", "provenance", "task_id")


@admin.register(Calibration)
class CalibrationAdmin(admin.ModelAdmin):
    list_display = ("persona", "study", "method", "created")
    list_filter = ("method",)
    readonly_fields = ("created",)
