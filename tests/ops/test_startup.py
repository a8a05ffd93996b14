"""A serving process's start-up: what it leaves to the garbage collector."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Start a process as `serve` does (scripted backend, loaded in the background) and report how
# many objects were frozen before serving and after the load, and whether garbage cycles made
# afterwards are still collected.
SCRIPT = """
import gc, json, time
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from generation.lifecycle import runtime
from generation.ops.startup import start_process
start_process()
frozen_at_start = gc.get_freeze_count()
deadline = time.monotonic() + 30
while runtime.loaded_backend() is None and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.2)  # the load thread freezes once more after the load
class Node: pass
for _ in range(100):
    a, b = Node(), Node(); a.b, b.a = b, a  # unreachable cycles once the loop moves on
del a, b
print(json.dumps({"frozen_at_start": frozen_at_start, "frozen_after_load": gc.get_freeze_count(),
                  "collected_after": gc.collect()}))
"""


def test_start_up_freezes_what_is_alive_before_serving_and_after_the_load(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "SLUICE_DATA_DIR": str(tmp_path),
           "SLUICE_BACKEND": "tests.support.scripted.ScriptedBackend", "SLUICE_PRELOAD_MODEL": "true"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["frozen_at_start"] > 10_000  # Django, the apps, the redaction tables
    assert found["frozen_after_load"] > found["frozen_at_start"]  # the backend's module and objects
    assert found["collected_after"] >= 200  # the collector still frees what serving leaves behind
