"""Django's deploy-time security checks for Sluice's own middleware.

Django looks its middleware up by dotted path ("django.middleware.security.SecurityMiddleware"
in MIDDLEWARE); project/middleware.py subclasses each one to run its hooks on the event loop,
so Django reports them missing (W001-W003, silenced in settings) and skips every check that
depends on them (HSTS, SSL redirect, secure cookies, X-Frame-Options, ...). This check runs
Django's security checks again with each subclass also named by its Django base, and reports
what they find that the plain run did not; a middleware that is really missing is reported as
sluice.W001-W003.
"""
from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.test.utils import override_settings
from django.utils.module_loading import import_string

SILENCED_HERE = {"security.W001", "security.W002", "security.W003"}


def middleware_as_django_paths(middleware: list[str]) -> list[str]:
    """MIDDLEWARE plus the dotted path of every Django middleware class an entry subclasses."""
    paths = list(middleware)
    for path in middleware:
        for klass in import_string(path).__mro__:
            dotted = f"{klass.__module__}.{klass.__qualname__}"
            if dotted.startswith("django.") and dotted.endswith("Middleware") and dotted not in paths:
                paths.append(dotted)
    return paths


def _security_deploy_checks() -> list:
    return [
        check
        for check in checks.registry.registry.deployment_checks
        if check.__module__.startswith("django.core.checks.security")
    ]


def _run(app_configs) -> list[checks.CheckMessage]:
    return [message for check in _security_deploy_checks() for message in check(app_configs=app_configs)]


@checks.register(checks.Tags.security, deploy=True)
def security_with_subclassed_middleware(app_configs, **kwargs) -> list[checks.CheckMessage]:
    plain = {message.id for message in _run(app_configs)}
    with override_settings(MIDDLEWARE=middleware_as_django_paths(settings.MIDDLEWARE)):
        mapped = _run(app_configs)
    found = []
    for message in mapped:
        if message.id in SILENCED_HERE:
            message.id = message.id.replace("security.", "sluice.")
            found.append(message)
        elif message.id not in plain:
            found.append(message)
    return found
