from django.apps import AppConfig


class SeriesConfig(AppConfig):
    name = "series"
    verbose_name = "Series generation"

    def ready(self) -> None:
        from . import schema  # noqa: F401  (registers the OpenAPI extensions of the custom fields)
