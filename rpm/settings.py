"""One settings module, configured from the environment.

Nothing set gives the embedded default: SQLite (WAL) under ``var/``, the in-process
channel layer and tasks run in-process, so a newcomer installs no server.
``DATABASE_URL`` selects PostgreSQL, ``REDIS_URL`` the Redis channel layer, cache and
Celery broker. With ``DEBUG`` off the settings refuse an unsafe configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from rpm.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("RPM_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production"  # noqa: S105


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [
        item.strip()
        for item in os.environ.get(name, default).split(",")
        if item.strip()
    ]


DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")

# DEBUG defaults on only for the embedded default: a deployment names its database,
# and then forgetting DEBUG=false must not leave tracebacks open to the world.
DEBUG = env_bool("DEBUG", default=not DATABASE_URL)
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
TASKS_IN_PROCESS = not REDIS_URL

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "channels",
    "patients",
    "telemetry",
    "alerts",
    "security",
    "frontend",
]

MIDDLEWARE = [
    # Outermost: the request ID and the latency cover everything below it.
    "rpm.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "frontend.middleware.IdleTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "rpm.urls"
ASGI_APPLICATION = "rpm.asgi.application"
AUTH_USER_MODEL = "patients.User"
AUTHENTICATION_BACKENDS = ["patients.auth.ThrottledModelBackend"]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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


def database_config() -> dict:
    if DATABASE_URL:
        # Under ASGI every request runs in a thread of its own and a connection
        # belongs to a thread, so CONN_MAX_AGE keeps nothing: a process-wide pool
        # reuses connections (Django requires CONN_MAX_AGE=0 with it). Keep
        # processes x DB_POOL_MAX under PostgreSQL's max_connections.
        config = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
        config.setdefault("OPTIONS", {})["pool"] = {
            "min_size": int(os.environ.get("DB_POOL_MIN", "2")),
            "max_size": int(os.environ.get("DB_POOL_MAX", "8")),
            "timeout": int(os.environ.get("DB_POOL_TIMEOUT_S", "10")),
        }
        # With a pool, Django then has the pool check a connection before lending
        # it (one round trip): one broken by a PostgreSQL restart is replaced
        # instead of failing the request or task that gets it.
        config["CONN_HEALTH_CHECKS"] = True
        # One test database per run, so that runs side by side never collide.
        config["TEST"] = {"NAME": f"test_{config['NAME']}_{os.getpid()}"}
        return config
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "rpm.sqlite3",
        # IMMEDIATE takes the write lock up front, so two writers queue on the
        # timeout instead of failing with "database is locked" half-way through.
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        # One file per test run, so that runs side by side never share a database.
        "TEST": {"NAME": VAR_DIR / f"test-{os.getpid()}.sqlite3"},
    }


DATABASES = {"default": database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {
        "default": {
            # One pool and one client per process, not per thread (= per ASGI
            # request) or per operation: rpm/redis_pool.py.
            "BACKEND": "rpm.redis_pool.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rpm",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 times reads out after 5 s by default, exactly as long as
            # channels-redis blocks in BZPOPMIN: an idle socket's consumer would die
            # with 1011 every few seconds. A longer read timeout still notices a
            # dead Redis.
            # A consumer's channel holds at most "capacity" messages: beyond it
            # channels-redis drops pushes (it logs "channels over capacity").
            # 100 by default; a burst of alarms filled a clinician's in the alert
            # bench at 1,000 devices. The alert panel recovers a drop at its next
            # pong (max_seq, alerts/consumers.py), but a drop should be rare.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                "prefix": os.environ.get("CHANNEL_PREFIX", "rpm"),
                "capacity": int(os.environ.get("CHANNEL_CAPACITY", "1000")),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery. Without a broker the tasks run in-process, eagerly, after the commit that
# queued them (delay_on_commit), which keeps the embedded default honest.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = TASKS_IN_PROCESS
# A failing in-process task must not turn a stored upload into a 500: the sweep
# retries it, as a worker would.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes the database before and after every task, and with
# a connection pool in a prefork child it closes the whole pool: three new
# PostgreSQL sessions per task, measured (613 for 200 batches). Close them every
# 1,000 tasks instead; the pool checks a connection before lending it, so one
# that died with a PostgreSQL restart is replaced, not handed to a task.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Several deployments (or test runs) may share one Redis: each names its own queue.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "celery")
# Triage: a batch carrying a reading beyond an alert threshold is processed from a
# queue of its own, which workers empty first ("priority": BRPOP asks the queues
# in this order), so its alarm does not wait behind a backlog of routine batches.
# Each queue has its own routing key: with a shared key the Redis transport would
# deliver a task to both.
URGENT_TASK_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}.urgent"
CELERY_TASK_QUEUES = [
    Queue(URGENT_TASK_QUEUE, routing_key=URGENT_TASK_QUEUE),
    Queue(CELERY_TASK_DEFAULT_QUEUE, routing_key=CELERY_TASK_DEFAULT_QUEUE),
]
CELERY_TASK_DEFAULT_ROUTING_KEY = CELERY_TASK_DEFAULT_QUEUE
CELERY_BROKER_TRANSPORT_OPTIONS = {"queue_order_strategy": "priority"}
# Periodic work: celery beat in production, `manage.py run_periodic` in the embedded
# default (make demo), both from this one schedule.
CELERY_BEAT_SCHEDULE = {
    "sweep-unprocessed-batches": {
        "task": "telemetry.tasks.sweep_unprocessed_batches",
        "schedule": 30.0,
    },
    "detect-stale-devices": {
        "task": "alerts.tasks.detect_stale_devices",
        "schedule": 15.0,
    },
    "escalate-due-alerts": {
        "task": "alerts.tasks.escalate_due_alerts",
        "schedule": 10.0,
    },
    "run-qkd-link": {
        "task": "security.tasks.run_qkd_link",
        "schedule": float(os.environ.get("QKD_RUN_INTERVAL_S", "60")),
    },
    "apply-retention": {
        "task": "telemetry.tasks.apply_retention",
        "schedule": float(os.environ.get("RETENTION_INTERVAL_S", "3600")),
    },
}
# Celery's own logging would replace LOGGING in workers: see rpm/celery.py.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Retention (telemetry/retention.py): raw ECG and raw vital signs older than these
# are dropped, vital signs after being summarised per minute and per hour. Each run
# deletes at most RETENTION_MAX_ROWS_PER_RUN rows, in transactions of at most
# RETENTION_CHUNK_ROWS, so it never holds long locks; the next run goes on.
ECG_RETENTION_DAYS = int(os.environ.get("ECG_RETENTION_DAYS", "30"))
VITALS_RETENTION_DAYS = int(os.environ.get("VITALS_RETENTION_DAYS", "400"))
RETENTION_MAX_ROWS_PER_RUN = int(os.environ.get("RETENTION_MAX_ROWS_PER_RUN", "200000"))
RETENTION_CHUNK_ROWS = int(os.environ.get("RETENTION_CHUNK_ROWS", "5000"))

_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {
        "NAME": f"{_VALIDATORS}.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "ward"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "patients.auth.ClinicianTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rpm.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Remote patient monitoring API",
    "DESCRIPTION": "Device uploads, clinician reads, alerts and QKD key delivery.",
    "VERSION": "1.0.0",
    # 3.1: its schemas are JSON Schema 2020-12, which pydantic emits (BatchIn).
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from our own static files: hospital networks often have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Device uploads: body limit (413 beyond it) and rate per device (429 beyond it).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("UPLOAD_MAX_BYTES", str(2 << 20)))
DEVICE_RATE = os.environ.get("DEVICE_RATE", "120/min")

# NEWS2 from the latest readings: a spot check counts for an hour, a streamed value
# (from a device reporting at least every NEWS2_STREAMING_INTERVAL_S) for a minute.
NEWS2_SPOT_WINDOW_S = int(os.environ.get("NEWS2_SPOT_WINDOW_S", "3600"))
NEWS2_CONTINUOUS_WINDOW_S = int(os.environ.get("NEWS2_CONTINUOUS_WINDOW_S", "60"))
NEWS2_STREAMING_INTERVAL_S = int(os.environ.get("NEWS2_STREAMING_INTERVAL_S", "15"))

# Alerts: unacknowledged high and medium alerts escalate (care team → charge nurse →
# admin) after these delays; a device is stale after its interval plus the grace.
ALERT_ESCALATION_DELAYS_S = {
    "high": int(os.environ.get("ALERT_ESCALATE_HIGH_S", "120")),
    "medium": int(os.environ.get("ALERT_ESCALATE_MEDIUM_S", "600")),
}
ALERT_MAX_SNOOZE_MIN = int(os.environ.get("ALERT_MAX_SNOOZE_MIN", "60"))
DEVICE_STALE_GRACE_S = int(os.environ.get("DEVICE_STALE_GRACE_S", "120"))

# The emulated QKD link and our key manager (ETSI GS QKD 014). KEY_ENCRYPTION_KEY
# (base64, 32 bytes) encrypts key material at rest; unset, it is derived from
# SECRET_KEY. The link runs every QKD_RUN_INTERVAL_S and fills the SAE pools.
KEY_ENCRYPTION_KEY = os.environ.get("KEY_ENCRYPTION_KEY", "")
QKD_SERVER_SAE_ID = os.environ.get("QKD_SERVER_SAE_ID", "rpm-ingest")
QKD_SOURCE_KME_ID = os.environ.get("QKD_SOURCE_KME_ID", "KME-HOSPITAL")
QKD_TARGET_KME_ID = os.environ.get("QKD_TARGET_KME_ID", "KME-DEVICES")
QKD_DISTANCE_KM = float(os.environ.get("QKD_DISTANCE_KM", "25"))
QKD_PULSES_PER_RUN = int(os.environ.get("QKD_PULSES_PER_RUN", "20000000"))
QKD_RUN_INTERVAL_S = float(os.environ.get("QKD_RUN_INTERVAL_S", "60"))
QKD_MAX_KEY_COUNT = int(os.environ.get("QKD_MAX_KEY_COUNT", "8"))
QKD_TRUST_PROXY_CLIENT_CERT = env_bool("QKD_TRUST_PROXY_CLIENT_CERT", default=False)
QKD_SESSION_TTL_S = int(os.environ.get("QKD_SESSION_TTL_S", "3600"))
QKD_SESSION_MAX_BATCHES = int(os.environ.get("QKD_SESSION_MAX_BATCHES", "10000"))

# Failed sign-ins allowed per username and per client address in the window.
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_FAILURE_WINDOW_S = int(os.environ.get("LOGIN_FAILURE_WINDOW_S", "900"))
# A program's clinician token lasts one long shift.
CLINICIAN_TOKEN_TTL_S = int(os.environ.get("CLINICIAN_TOKEN_TTL_S", str(12 * 3600)))

# Logs: one JSON object per line with the request ID (rpm/logs.py); a plain line
# with the request ID for a developer's terminal (DEBUG), unless LOG_FORMAT says.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain" if DEBUG else "json")
LOGGING = logging_config(fmt=LOG_FORMAT, level=os.environ.get("LOG_LEVEL", "INFO"))

# Operations (docs/deploy.md). /metrics answers a bearer METRICS_TOKEN or a staff
# session. Processes that share PROMETHEUS_MULTIPROC_DIR add their counters up;
# with Celery workers it defaults to var/metrics, set before any metric exists.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
if not TASKS_IN_PROCESS and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(VAR_DIR / "metrics")
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
# A host with workers and no Daphne serves its worker metrics on this port.
WORKER_METRICS_PORT = int(os.environ.get("WORKER_METRICS_PORT", "0"))
WORKER_METRICS_ADDRESS = os.environ.get("WORKER_METRICS_ADDRESS", "127.0.0.1")
# /readyz: at most this many batches may wait over a minute for analysis, and no
# dependency may take longer than the timeout to answer.
READY_BACKLOG_LIMIT = int(os.environ.get("READY_BACKLOG_LIMIT", "200"))
READY_CHECK_TIMEOUT_S = float(os.environ.get("READY_CHECK_TIMEOUT_S", "5"))

# Production hardening: on whenever DEBUG is off.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts only from our own origin, so that
# text a page shows (a patient's name, a note) can never run as script even if an
# escaping bug let markup through. Styles allow inline: the ward's adherence bars
# are sized by style attributes and the API docs (Swagger UI) carry a <style>
# block; CSS cannot run script. 'self' covers the same origin's wss:// too (CSP 3).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],  # Swagger UI's icons are data: URLs
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SESSION_COOKIE_HTTPONLY = True
# A browser session ends after SESSION_IDLE_TIMEOUT_S without activity, and after
# SESSION_COOKIE_AGE in any case.
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(8 * 3600)))
SESSION_IDLE_TIMEOUT_S = int(os.environ.get("SESSION_IDLE_TIMEOUT_S", "900"))
# Probes speak plain HTTP to the process (a load balancer, an orchestrator).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if env_bool("BEHIND_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def refuse_unsafe_production() -> None:
    problems = []
    if SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50:
        problems.append("set SECRET_KEY to a random value of at least 50 characters")
    if not ALLOWED_HOSTS:
        problems.append("set ALLOWED_HOSTS to the host names this server answers to")
    if TASKS_IN_PROCESS:
        problems.append(
            "set REDIS_URL: production runs tasks in separate Celery workers"
        )
    if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
        problems.append("set METRICS_TOKEN to at least 32 random characters, or unset")
    if problems:
        raise ImproperlyConfigured("DEBUG is off, so: " + "; ".join(problems))


if not DEBUG:
    refuse_unsafe_production()
