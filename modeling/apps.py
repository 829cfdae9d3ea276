from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "modeling"
    verbose_name = "Personas"

    def ready(self):
        from modeling import recovery

        recovery.register()
