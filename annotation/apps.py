from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Claims and human studies"

    def ready(self):
        from annotation import recovery

        recovery.register()
