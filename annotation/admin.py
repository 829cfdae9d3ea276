"""Django admin for datasets, claims and imports."""
from django.contrib import admin
from django.db.models import Count

from .models import BaseClaim, ClaimImport, Dataset, FramedClaim


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
