"""How many CPU threads an in-process model may use: the cores this process may run on,
shared out among the Sluice processes on the machine (SLUICE_PROCESSES)."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_process(processes: int) -> int:
    """The default llama.cpp threads when `processes` Sluice processes share the cores:
    more would make their decodes fight for the same cores and every stream slower."""
    return max(1, usable_cores() // max(1, processes))
