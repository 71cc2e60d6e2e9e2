from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = "Patients, clinicians and devices"

    def ready(self) -> None:
        from . import schema  # noqa: F401 (registers the OpenAPI auth extensions)
