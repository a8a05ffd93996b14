"""The scripted backend for a live server in its own process, where the test cannot set the
class's knobs: the script is JSON in SLUICE_TEST_SCRIPT (a list of pieces; [] is a run that
writes nothing) and the delay per token in SLUICE_TEST_TOKEN_DELAY seconds."""
from __future__ import annotations

import json
import os

from tests.support.scripted import ScriptedBackend


class EnvScriptedBackend(ScriptedBackend):
    @classmethod
    def from_settings(cls, settings) -> "EnvScriptedBackend":
        cls.script = json.loads(os.environ.get("SLUICE_TEST_SCRIPT", "[]"))
        cls.token_delay = float(os.environ.get("SLUICE_TEST_TOKEN_DELAY", "0"))
        return super().from_settings(settings)
