"""Sluice settings. Every value comes from the environment (django-environ) with safe
defaults for the embedded set-up: SQLite in WAL mode, in-memory channel layer, and the
Gemma 3 270M GGUF assembled from its PyPI package."""
from __future__ import annotations

import os
from pathlib import Path

import environ

from project import tuning
from project.secret_key import load_or_create_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DATA_DIR = Path(env("SLUICE_DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="") or load_or_create_secret_key(DATA_DIR / "secret_key")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "project.apps.ProjectConfig",  # registers project/checks.py
    "generation",
    "redaction",
]

# Django's standard stack, with hooks that run on the event loop (see project/middleware.py).
MIDDLEWARE = [
    "project.middleware.DatabaseUnavailableMiddleware",
    "project.middleware.SecurityMiddleware",
    "project.static.AsyncWhiteNoiseMiddleware",
    "project.middleware.SessionMiddleware",
    "project.middleware.CommonMiddleware",
    "project.middleware.CsrfViewMiddleware",
    "project.middleware.AuthenticationMiddleware",
    "project.middleware.MessageMiddleware",
    "project.middleware.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'sluice.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers (admin, history) run beside the writer; IMMEDIATE plus a busy timeout
    # makes concurrent writers wait instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # Kept open between requests: a new SQLite connection costs milliseconds of Django's own
    # set-up (its SQL functions, the pragmas above) on every request. Django advises against
    # persistent connections under ASGI for database servers, whose connections are scarce;
    # a SQLite connection is a file handle, and PostgreSQL uses the pool below instead.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("SLUICE_SQLITE_CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A bounded pool per process: N processes hold at most N x SLUICE_DB_POOL_MAX connections
    # (size it under PostgreSQL's max_connections; docs/deployment.md). A request that cannot
    # get a connection within the timeout, or a database that is down, is a JSON 503.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a pooled connection the server dropped is replaced
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "pool": {
                "min_size": env.int("SLUICE_DB_POOL_MIN", default=1),
                "max_size": env.int("SLUICE_DB_POOL_MAX", default=8),
                "timeout": env.float("SLUICE_DB_POOL_TIMEOUT_SECONDS", default=5.0),
            },
            "connect_timeout": env.int("SLUICE_DB_CONNECT_TIMEOUT_SECONDS", default=3),
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_channel_layer_url = env("CHANNEL_LAYER_URL", default="memory://")
if _channel_layer_url.startswith(("redis://", "rediss://")):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [_channel_layer_url]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", default=str(DATA_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve from static/ even before collectstatic has run

# Security. The embedded default serves plain HTTP on loopback, so HTTPS-only cookies, the
# HTTPS redirect and HSTS are off; DJANGO_SECURE=true (behind a TLS-terminating proxy, see
# docs/deployment.md) turns them all on and trusts the proxy's X-Forwarded-Proto. Each one
# can still be set on its own.
DJANGO_SECURE = env.bool("DJANGO_SECURE", default=False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=DJANGO_SECURE)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=DJANGO_SECURE)
# Probes and scrapers call each process directly over plain HTTP: a redirect would fail them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000 if DJANGO_SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=DJANGO_SECURE)
# Preloading is a promise to browser vendors about the whole domain: only on request.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=DJANGO_SECURE):
    # Only safe when the processes are reachable through the proxy alone, which sets the header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Django finds its middleware by dotted path; project/middleware.py subclasses it, so these
# three would be false alarms. project/checks.py runs the same checks on the subclasses.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# --- Sluice ---------------------------------------------------------------------------
SLUICE_BACKEND = env("SLUICE_BACKEND", default="generation.backends.llamacpp.LlamaCppBackend")
SLUICE_MODEL_PATH = env("SLUICE_MODEL_PATH", default="")  # empty: the embedded Gemma 3 270M
SLUICE_MODEL_NAME = env("SLUICE_MODEL_NAME", default="")  # empty: derived from the file name
SLUICE_MODEL_CACHE_DIR = Path(env("SLUICE_MODEL_CACHE_DIR", default=str(DATA_DIR / "models")))
SLUICE_N_CTX = env.int("SLUICE_N_CTX", default=4096)
SLUICE_N_BATCH = env.int("SLUICE_N_BATCH", default=256)
SLUICE_N_THREADS = env.int("SLUICE_N_THREADS", default=0)  # 0: the cores / SLUICE_PROCESSES
SLUICE_PROCESSES = env.int("SLUICE_PROCESSES", default=1)  # Sluice processes sharing this machine's cores
SLUICE_N_GPU_LAYERS = env.int("SLUICE_N_GPU_LAYERS", default=0)  # -1: all layers
# batched: one context, the slots decoded together; contexts: one context per slot (docs/architecture.md)
SLUICE_ENGINE = env("SLUICE_ENGINE", default="batched")
# llama.cpp's extra weight buffers (CPU repacking, Intel AMX); unset: on unless the CPU advertises AMX.
SLUICE_LLAMA_EXTRA_BUFFERS = env.bool("SLUICE_LLAMA_EXTRA_BUFFERS", default=None)
SLUICE_SLOTS = env.int("SLUICE_SLOTS", default=4)  # chosen from bench/slots_bench.py on 2 cores
SLUICE_MAX_QUEUE = env.int("SLUICE_MAX_QUEUE", default=16)

# Remote engines (docs/deployment.md, "Scaling out"). SLUICE_UPSTREAMS lists the base URLs
# of OpenAI-compatible engine servers, each optionally named (`a=http://10.0.0.5:8080`);
# setting it serves from them instead of a model in this process, with the scheduler's slots
# the sum of theirs. The per-upstream lists take one value for all or one per upstream.
SLUICE_UPSTREAMS = env("SLUICE_UPSTREAMS", default="")
SLUICE_UPSTREAM_SLOTS = env("SLUICE_UPSTREAM_SLOTS", default="4")  # concurrent requests per upstream
SLUICE_UPSTREAM_API_KEYS = env("SLUICE_UPSTREAM_API_KEYS", default="")  # sent as Bearer; empty: none
SLUICE_UPSTREAM_MODEL = env("SLUICE_UPSTREAM_MODEL", default="")  # the `model` sent; empty: none
SLUICE_UPSTREAM_MODEL_VERSION = env("SLUICE_UPSTREAM_MODEL_VERSION", default="")  # empty: the upstream's model list
SLUICE_UPSTREAM_PROMPT = env("SLUICE_UPSTREAM_PROMPT", default="text")  # text | tokens (llama-server, vLLM)
SLUICE_UPSTREAM_AFFINITY = env.bool("SLUICE_UPSTREAM_AFFINITY", default=False)  # a caller sticks to one upstream
SLUICE_UPSTREAM_CONNECT_TIMEOUT_SECONDS = env.float("SLUICE_UPSTREAM_CONNECT_TIMEOUT_SECONDS", default=2.0)
SLUICE_UPSTREAM_RETRY_BUDGET_SECONDS = env.float("SLUICE_UPSTREAM_RETRY_BUDGET_SECONDS", default=5.0)
SLUICE_UPSTREAM_HEALTH_SECONDS = env.float("SLUICE_UPSTREAM_HEALTH_SECONDS", default=5.0)  # 0: passive checks only
SLUICE_UPSTREAM_COOLDOWN_SECONDS = env.float("SLUICE_UPSTREAM_COOLDOWN_SECONDS", default=10.0)
SLUICE_UPSTREAM_HEALTH_PATH = env("SLUICE_UPSTREAM_HEALTH_PATH", default="/health")
if SLUICE_UPSTREAMS:
    if "SLUICE_BACKEND" not in env:
        SLUICE_BACKEND = "generation.backends.remote.RemoteBackend"
    _upstream_count = len([url for url in SLUICE_UPSTREAMS.split(",") if url.strip()])
    _upstream_slots = [int(value) for value in SLUICE_UPSTREAM_SLOTS.split(",") if value.strip()] or [4]
    SLUICE_SLOTS = sum(_upstream_slots) if len(_upstream_slots) > 1 else _upstream_slots[0] * _upstream_count

# Per machine (`manage.py tune`, docs/cli.md): a value set in the environment wins, else the
# tuning file when it was measured for this model file, CPU and SLUICE_PROCESSES, else the
# default above. SLUICE_CONFIG_SOURCES says which, for serve's log.
SLUICE_TUNING = env.bool("SLUICE_TUNING", default=True)  # false: ignore the tuning file
SLUICE_TUNING_FILE = Path(env("SLUICE_TUNING_FILE", default=str(DATA_DIR / "tuning.json")))
_tuning = tuning.load(
    SLUICE_TUNING_FILE,
    environ=os.environ,
    off=tuning.off_reason(switch=SLUICE_TUNING, upstreams=SLUICE_UPSTREAMS, backend=SLUICE_BACKEND),
    current=lambda: tuning.current_fingerprint(
        model_path=SLUICE_MODEL_PATH,
        cache_dir=SLUICE_MODEL_CACHE_DIR,
        processes=SLUICE_PROCESSES,
        n_gpu_layers=SLUICE_N_GPU_LAYERS,
    ),
)
SLUICE_N_THREADS = _tuning.values.get("SLUICE_N_THREADS", SLUICE_N_THREADS)
SLUICE_SLOTS = _tuning.values.get("SLUICE_SLOTS", SLUICE_SLOTS)
SLUICE_ENGINE = _tuning.values.get("SLUICE_ENGINE", SLUICE_ENGINE)
SLUICE_N_BATCH = _tuning.values.get("SLUICE_N_BATCH", SLUICE_N_BATCH)
SLUICE_CONFIG_SOURCES = _tuning.sources  # {"SLUICE_SLOTS": "environment" | "tuning file" | "default", ...}
SLUICE_TUNING_STATUS = _tuning.status  # one line: used, none, ignored (and why) or not used (and why)

SLUICE_MAX_TOKENS = env.int("SLUICE_MAX_TOKENS", default=1024)
SLUICE_DEFAULT_MAX_TOKENS = env.int("SLUICE_DEFAULT_MAX_TOKENS", default=256)
SLUICE_MAX_PROMPT_CHARS = env.int("SLUICE_MAX_PROMPT_CHARS", default=16000)
SLUICE_MAX_STOP_SEQUENCES = env.int("SLUICE_MAX_STOP_SEQUENCES", default=4)
SLUICE_HEARTBEAT_SECONDS = env.float("SLUICE_HEARTBEAT_SECONDS", default=10.0)
SLUICE_QUEUE_TIMEOUT_SECONDS = env.float("SLUICE_QUEUE_TIMEOUT_SECONDS", default=60.0)
SLUICE_STALL_TIMEOUT_SECONDS = env.float("SLUICE_STALL_TIMEOUT_SECONDS", default=30.0)
SLUICE_TOTAL_TIMEOUT_SECONDS = env.float("SLUICE_TOTAL_TIMEOUT_SECONDS", default=300.0)
SLUICE_SHUTDOWN_GRACE_SECONDS = env.float("SLUICE_SHUTDOWN_GRACE_SECONDS", default=10.0)
SLUICE_PRELOAD_MODEL = env.bool("SLUICE_PRELOAD_MODEL", default=True)
# Per-caller limits (API key or signed-in user; docs/api.md): defaults for callers whose
# CallerLimit row (admin) leaves them empty; 0 is unlimited. Counters are shared through
# SLUICE_LIMITS_URL: Redis with several processes (the channel layer's by default).
SLUICE_LIMIT_REQUESTS_PER_MINUTE = env.int("SLUICE_LIMIT_REQUESTS_PER_MINUTE", default=0)
SLUICE_LIMIT_CONCURRENT_STREAMS = env.int("SLUICE_LIMIT_CONCURRENT_STREAMS", default=0)
SLUICE_LIMIT_TOKENS_PER_DAY = env.int("SLUICE_LIMIT_TOKENS_PER_DAY", default=0)
# How long a process keeps a caller's limits (its CallerLimit row) before reading them again.
SLUICE_LIMITS_CACHE_SECONDS = env.float("SLUICE_LIMITS_CACHE_SECONDS", default=10.0)
SLUICE_LIMITS_URL = env(
    "SLUICE_LIMITS_URL", default=_channel_layer_url if _channel_layer_url.startswith("redis") else "memory://"
)
SLUICE_API_KEY_CACHE_SECONDS = env.float("SLUICE_API_KEY_CACHE_SECONDS", default=30.0)
SLUICE_OWNER_HEARTBEAT_SECONDS = env.float("SLUICE_OWNER_HEARTBEAT_SECONDS", default=10.0)
SLUICE_SWEEP_GRACE_SECONDS = env.float("SLUICE_SWEEP_GRACE_SECONDS", default=60.0)  # see generations_sweep
SLUICE_OWNER_TIMEOUT_SECONDS = env.float("SLUICE_OWNER_TIMEOUT_SECONDS", default=45.0)  # a process silent this long is dead
SLUICE_METRICS_TOKEN = env("SLUICE_METRICS_TOKEN", default="")  # empty: direct localhost clients only
# The address `serve --host` listens on (it sets this); /metrics needs its token when it is not loopback.
SLUICE_BIND_HOST = env("SLUICE_BIND_HOST", default="127.0.0.1")
SLUICE_RETENTION_DAYS = env.int("SLUICE_RETENTION_DAYS", default=90)  # prune_generations default

# Resumable streams (docs/api.md): how long a run waits for its client to come back, and
# the bounds on the events each run keeps in memory for a resume.
SLUICE_RESUME_GRACE_SECONDS = env.float("SLUICE_RESUME_GRACE_SECONDS", default=15.0)
SLUICE_RESUME_MAX_EVENTS = env.int("SLUICE_RESUME_MAX_EVENTS", default=4096)
SLUICE_RESUME_MAX_BYTES = env.int("SLUICE_RESUME_MAX_BYTES", default=1024 * 1024)
SLUICE_RESUME_RETRY_MS = env.int("SLUICE_RESUME_RETRY_MS", default=1000)  # the SSE `retry:` field

# Redaction. Per-field policy overrides as JSON, e.g. {"prompt": {"PRICE": "redact"}};
# the built-in defaults are in redaction/fields.py (DEFAULT_FIELD_POLICIES).
SLUICE_REDACTION_POLICIES = env.json("SLUICE_REDACTION_POLICIES", default={})
SLUICE_REDACTION_RESTORE = env.bool("SLUICE_REDACTION_RESTORE", default=True)  # put values back in the output
SLUICE_OUTPUT_GUARD = env.bool("SLUICE_OUTPUT_GUARD", default=True)  # mask secrets/cards the model writes
SLUICE_PHONE_REGION = env("SLUICE_PHONE_REGION", default="US")
SLUICE_TERMS_REFRESH_SECONDS = env.float("SLUICE_TERMS_REFRESH_SECONDS", default=5.0)

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # The generation log line is already a JSON object with a fixed set of fields.
        "json_line": {"format": "%(message)s"},
    },
    # Django's request warnings name the path ("Not Found: /..."): logged as its route instead.
    "filters": {"routes": {"()": "project.logs.RequestRouteFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["routes"]},
        "generation": {"class": "logging.StreamHandler", "formatter": "json_line"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "sluice.generation": {"handlers": ["generation"], "level": "INFO", "propagate": False},
        "django.channels.server": {"level": "WARNING"},
        # Its message quotes the refused Host value; project.errors logs the refusal instead.
        "django.security.DisallowedHost": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}
