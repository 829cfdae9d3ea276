"""URLs of the researchers' REST API, mounted at /api/ (the schema and Swagger UI sit beside
them in config/urls.py)."""
from django.urls import path, re_path

import annotation.api.views as api

app_name = "api"

study = "studies/<int:pk>/"

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="token"),
    path("datasets/", api.DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<int:pk>/", api.DatasetDetailView.as_view(), name="dataset-detail"),
    path("imports/", api.ClaimImportListCreateView.as_view(), name="import-list"),
    path("imports/<int:pk>/", api.ClaimImportDetailView.as_view(), name="import-detail"),
    path("studies/", api.StudyListCreateView.as_view(), name="study-list"),
    path(study, api.StudyDetailView.as_view(), name="study-detail"),
    path(study + "open/", api.StudyOpenView.as_view(), name="study-open"),
    path(study + "pause/", api.StudyPauseView.as_view(), name="study-pause"),
    path(study + "close/", api.StudyCloseView.as_view(), name="study-close"),
    path(study + "progress/", api.StudyProgressView.as_view(), name="study-progress"),
    path(study + "collaborators/", api.StudyCollaboratorsView.as_view(), name="study-collaborators"),
    path(study + "collaborators/<str:username>/", api.StudyCollaboratorDetailView.as_view(),
         name="study-collaborator-detail"),
    path(study + "participants/", api.ParticipantListView.as_view(), name="participant-list"),
    path(study + "participants/mark/", api.ParticipantBulkMarkView.as_view(),
         name="participant-bulk-mark"),
    path(study + "participants/<int:participant_pk>/", api.ParticipantDetailView.as_view(),
         name="participant-detail"),
    path(study + "participants/<int:participant_pk>/mark/", api.ParticipantMarkView.as_view(),
         name="participant-mark"),
    path(study + "judgments/export/", api.JudgmentExportView.as_view(), name="judgment-export"),
    path(study + "exports/", api.StudyExportListCreateView.as_view(), name="study-exports"),
    path(study + "analysis/", api.StudyAnalysisView.as_view(), name="study-analysis"),
    path(study + "analysis/model/", api.StudyAnalysisModelView.as_view(), name="study-analysis-model"),
    path("exports/<int:pk>/", api.DataExportDetailView.as_view(), name="export-detail"),
    path("exports/<int:pk>/download/", api.DataExportDownloadView.as_view(), name="export-download"),
    path("judgments/", api.JudgmentListView.as_view(), name="judgment-list"),
    path("judgments/<int:pk>/", api.JudgmentDetailView.as_view(), name="judgment-detail"),
    # Anything else under /api/ is a JSON 404, like every other API answer, not an HTML page;
    # [\s\S], not `.`, which does not match a line break (%0A, %0D) in the path.
    re_path(r"^[\s\S]*\Z", api.not_found, name="not-found"),
]
