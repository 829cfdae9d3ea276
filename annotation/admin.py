"""Django admin for the annotation tables: datasets, claims, imports, studies, batches,
participants, judgments and exports."""
from django import forms
from django.contrib import admin
from django.db.models import Count

from annotation.models import BaseClaim, ClaimImport, Dataset, FramedClaim


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "licence", "base_claim_count", "created")
    search_fields = ("name", "description", "source")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(base_claim_count=Count("base_claims"))

    @admin.display(ordering="base_claim_count", description="base claims")
    def base_claim_count(self, obj):
        return obj.base_claim_count


class FramedClaimInline(admin.TabularInline):
    model = FramedClaim
    extra = 0
    fields = ("framing", "text", "verification", "generator")


@admin.register(BaseClaim)
class BaseClaimAdmin(admin.ModelAdmin):
    list_display = ("external_id", "dataset", "true_label", "split", "topic")
    list_filter = ("dataset", "true_label", "split")
    search_fields = ("external_id", "topic", "source")
    list_select_related = ("dataset",)
    show_full_result_count = False
    inlines = [FramedClaimInline]


@admin.register(FramedClaim)
class FramedClaimAdmin(admin.ModelAdmin):
    list_display = ("claim_id", "framing", "short_text", "verification")
    list_filter = ("framing", "verification", "base_claim__dataset", "base_claim__true_label")
    search_fields = ("text", "base_claim__external_id")
    list_select_related = ("base_claim",)
    raw_id_fields = ("base_claim",)
    show_full_result_count = False

    @admin.display(description="text")
    def short_text(self, obj):
        return obj.text if len(obj.text) <= 100 else obj.text[:97] + "..."


@admin.register(ClaimImport)
class ClaimImportAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset_name", "status", "rows_imported", "rows_skipped", "created", "finished")
    list_filter = ("status",)
    readonly_fields = ("task_id", "started", "finished", "rows_imported", "rows_skipped", "error")


from annotation.models import AttentionCheck, Batch, Judgment, Participant, Study  # noqa: E402
from annotation.studies.assignment import participant_mark  # noqa: E402
from annotation.studies.services import study_status_problem  # noqa: E402


class AttentionCheckInline(admin.TabularInline):
    model = AttentionCheck
    extra = 0


class StudyAdminForm(forms.ModelForm):
    """The admin's study form applies the service's status rule (the completion URL's rule
    is the model field's validator)."""

    def clean_status(self):
        status = self.cleaned_data["status"]
        if self.instance.pk is not None:
            stored = Study.objects.get(pk=self.instance.pk)
            problem = study_status_problem(stored, status)
            if problem:
                raise forms.ValidationError(problem)
        return status


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    form = StudyAdminForm
    list_display = ("name", "dataset", "status", "batch_size", "raters_per_batch", "created")
    list_filter = ("status",)
    search_fields = ("name",)
    inlines = [AttentionCheckInline]
    readonly_fields = ("base_claim_count", "base_claim_ids", "framings", "split", "batch_size",
                       "raters_per_batch", "seed", "dataset")


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("__str__", "quota", "active_count", "completed_count")
    list_filter = ("study",)
    readonly_fields = ("active_count", "completed_count")


def _mark(status):
    def action(modeladmin, request, queryset):
        for participant in queryset:
            participant_mark(participant=participant, status=status, note=f"marked in the admin by {request.user}")
    action.__name__ = f"mark_{status}"
    action.short_description = f"Mark selected participants {status.replace('_', ' ')} (reopens their slots)"
    return action


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("external_id", "study", "source", "batch", "status", "created", "completed_at")
    list_filter = ("study", "status", "source")
    search_fields = ("external_id",)
    readonly_fields = ("token", "batch", "status", "attention_failures", "consented_at",
                       "last_seen_at", "completed_at", "status_changed_at")
    actions = [_mark(status) for status in ("returned", "timed_out", "rejected", "excluded")]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ("participant", "position", "accept", "confidence", "familiarity", "answered_at", "revisions")
    list_filter = ("participant__study",)
    raw_id_fields = ("participant", "item")


from annotation.models import DataExport  # noqa: E402


@admin.register(DataExport)
class DataExportAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "format", "status", "rows_written", "rows_total", "created_by", "created", "finished")
    list_filter = ("status", "format")
    list_select_related = ("study", "created_by")
    readonly_fields = ("study", "format", "options", "status", "task_id", "rows_total", "rows_written",
                       "file", "error", "created_by", "started", "finished")
