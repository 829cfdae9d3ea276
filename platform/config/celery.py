"""The Celery application that web processes enqueue on and workers serve."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("framelab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_filesystem_broker_folders(sender, **kwargs):
    # kombu's filesystem transport expects its folders to exist.
    from django.conf import settings

    if sender.conf.broker_url.startswith("filesystem://"):
        for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
            folder = sender.conf.broker_transport_options.get(key)
            if folder:
                os.makedirs(folder, exist_ok=True)
    results = str(settings.CELERY_RESULT_BACKEND)
    if results.startswith("file://"):
        os.makedirs(results[len("file://"):], exist_ok=True)
