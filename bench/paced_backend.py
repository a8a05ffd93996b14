"""A backend that costs nothing but time: the scripted test backend with a fixed delay per
token and plain words, so a server's own CPU per delta can be measured without a model
taking the cores (bench/delta_cost_bench.py). Set SLUICE_PACED_DELAY for the delay."""
from __future__ import annotations

import os

from tests.support.scripted import ScriptedBackend

# Plain words: the output guard releases each at the next token, as it would prose.
WORDS = ("the quick brown fox jumps over a lazy dog while our new kettle boils water fast and quietly in every "
         "kitchen").split()


class PacedBackend(ScriptedBackend):
    script = [f" {word}" for word in WORDS * 400]
    token_delay = float(os.environ.get("SLUICE_PACED_DELAY", "0.01"))
    context_length = 8192
