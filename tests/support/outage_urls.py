"""A URLconf with one API route whose database is up or down on demand, for the middleware's
outage tests (tests/project/test_middleware.py)."""
from django.db import OperationalError
from django.http import JsonResponse
from django.urls import path

state = {"down": True, "calls": 0}


async def touch_database(request):
    state["calls"] += 1
    if state["down"]:
        raise OperationalError("connection refused")
    return JsonResponse({"ok": True})


urlpatterns = [path("api/v1/outage-probe", touch_database)]
