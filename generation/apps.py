"""The Django app that holds Sluice's records, lifecycle and transports."""
from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Generation"
