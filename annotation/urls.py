from django.urls import path
from django.views.decorators.cache import never_cache

import annotation.claims.views as views
import annotation.dataio.views as export_views
import annotation.studies.participant_views as participant_views
import annotation.studies.views as study_views
from core.lazy_views import lazy_view

app_name = "annotation"

participant = "s/<int:study_id>/p/<str:token>/"
# Participants' pages carry their session's token in the URL: no browser or proxy may keep a
# copy (`Cache-Control: no-store`, with no-cache, must-revalidate, private and max-age=0).
participant_page = never_cache
# The report computes with pandas, scipy and statsmodels: its module loads with the first
# report page (core/lazy_views.py), not in every worker and command.
report = "annotation.analysis.views."

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset-detail"),
    path("datasets/import/", views.claim_import_new, name="claim-import-new"),
    path("datasets/imports/<int:pk>/", views.claim_import_detail, name="claim-import-detail"),
    path("studies/", study_views.study_list, name="study-list"),
    path("studies/<int:pk>/", study_views.study_detail, name="study-detail"),
    path("studies/<int:pk>/status/", study_views.study_status, name="study-status"),
    path("studies/<int:pk>/exports/", export_views.study_exports, name="study-exports"),
    path("studies/<int:pk>/exports/download/", export_views.study_export_stream,
         name="study-export-stream"),
    path("studies/<int:pk>/report/", lazy_view(report + "study_report"), name="study-report"),
    path("studies/<int:pk>/report/plots/<slug:name>.<slug:fmt>", lazy_view(report + "study_report_plot"),
         name="study-report-plot"),
    path("studies/<int:pk>/report/tables/<slug:name>.csv", lazy_view(report + "study_report_table"),
         name="study-report-table"),
    path("studies/<int:pk>/report/analysis.<slug:fmt>", lazy_view(report + "study_report_data"),
         name="study-report-data"),
    path("studies/<int:pk>/report/model-fit/", lazy_view(report + "study_report_model_fit"),
         name="study-report-model-fit"),
    path("exports/<int:pk>/", export_views.export_detail, name="export-detail"),
    path("exports/<int:pk>/download/", export_views.export_download, name="export-download"),
    # What participants see: /s/<study>/ is the link given to the recruitment platform.
    path("s/<int:study_id>/", participant_page(participant_views.study_entry), name="study-entry"),
    path(participant, participant_page(participant_views.participant_home), name="participant-home"),
    path(participant + "consent/", participant_page(participant_views.participant_consent_page),
         name="participant-consent"),
    path(participant + "instructions/", participant_page(participant_views.participant_instructions),
         name="participant-instructions"),
    path(participant + "item/<int:position>/", participant_page(participant_views.participant_item),
         name="participant-item"),
    path(participant + "done/", participant_page(participant_views.participant_done), name="participant-done"),
]
