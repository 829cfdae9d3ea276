"""Reads of data exports that the pages and the API share."""
from __future__ import annotations

from django.db.models import QuerySet

from annotation.models import DataExport
from annotation.studies.selectors import studies_visible_to


def data_exports_visible_to(user) -> QuerySet[DataExport]:
    """The export jobs of the studies `user` may see."""
    return DataExport.objects.filter(
        study__in=studies_visible_to(user).values("pk")).select_related("study")
