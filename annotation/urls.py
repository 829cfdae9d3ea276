from django.urls import path

from . import views

app_name = "annotation"

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset-detail"),
    path("datasets/import/", views.claim_import_new, name="claim-import-new"),
    path("datasets/imports/<int:pk>/", views.claim_import_detail, name="claim-import-detail"),
]
