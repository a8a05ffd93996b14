"""`python -m llama_cpp.server` with the extra-buffer choice Sluice's backend makes: the
server takes no such option, and llama.cpp's default (repacked weights, Intel AMX) kills the
process with SIGILL on virtual machines that advertise AMX without supporting it."""
import sys

from llama_cpp import llama_cpp as bindings
from llama_cpp.server.__main__ import main


def _flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            return next((line for line in file if line.startswith("flags")), "").split()
    except OSError:
        return []


_default_params = bindings.llama_model_default_params


def _params():
    params = _default_params()
    params.use_extra_bufts = "amx_tile" not in _flags()
    return params


if __name__ == "__main__":
    bindings.llama_model_default_params = _params
    sys.argv[0] = "llama_cpp.server"
    main()
