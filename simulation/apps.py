from django.apps import AppConfig


class SimulationConfig(AppConfig):
    name = "simulation"
    verbose_name = "Simulations"

    def ready(self):
        from simulation import recovery

        recovery.register()
