from django.contrib import admin

from .models import SimulationRun


@admin.register(SimulationRun)
class SimulationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "dataset", "split", "policy", "trajectories", "steps", "runs",
                    "status", "progress", "created")
    list_filter = ("status", "policy", "candidate_mode", "dataset")
    search_fields = ("name",)
    readonly_fields = ("status", "progress", "shards_done", "shards_total", "results_path",
                       "summary", "error", "provenance", "task_ids", "created", "started",
                       "finished")
