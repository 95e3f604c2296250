"""Settings, all read from the environment (see .env.example). A bad value stops start-up with a clear message."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from project.env import (
    database_from_url,
    env_bool,
    env_emails,
    env_int,
    env_list,
    env_money,
    env_secret_key,
    env_str,
    env_time_zone,
    redis_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("APP_DATA_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file and the embedded broker live here

DEBUG = env_bool("DEBUG", False)
# GraphQL: introspection and field suggestions follow DEBUG unless set; limits refuse abusive queries before they run.
GRAPHQL_INTROSPECTION = env_bool("GRAPHQL_INTROSPECTION", DEBUG)
GRAPHQL_MAX_DEPTH = env_int("GRAPHQL_MAX_DEPTH", 10, minimum=2)
GRAPHQL_MAX_ALIASES = env_int("GRAPHQL_MAX_ALIASES", 30, minimum=1)
GRAPHQL_MAX_TOKENS = env_int("GRAPHQL_MAX_TOKENS", 2000, minimum=100)
# Untrusted callers (graphql_api.timeout, .cost, .ratelimit): a statement timeout (ms, 0: none) on each request's
# SQL, a cost budget checked before a query runs, and rate limits per API key or user in fixed windows.
API_STATEMENT_TIMEOUT_MS = env_int("API_STATEMENT_TIMEOUT_MS", 5000)
GRAPHQL_MAX_COST = env_int("GRAPHQL_MAX_COST", 100_000, minimum=1)
API_RATE_LIMIT_WINDOW_SECONDS = env_int("API_RATE_LIMIT_WINDOW_SECONDS", 60, minimum=1)
API_RATE_LIMIT_READS = env_int("API_RATE_LIMIT_READS", 600, minimum=1)  # requests per window
API_RATE_LIMIT_WRITES = env_int("API_RATE_LIMIT_WRITES", 100_000, minimum=1)  # recordUsage events per window
API_RATE_LIMIT_ANONYMOUS = env_int("API_RATE_LIMIT_ANONYMOUS", 60, minimum=1)  # requests per window per address
API_RATE_LIMIT_COST = env_int("API_RATE_LIMIT_COST", 300_000, minimum=1)  # query cost units per window
# The largest request body read (a recordUsage batch of 1,000 events with metadata); larger is refused with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
CSRF_FAILURE_VIEW = "project.middleware.csrf_failure"
SECRET_KEY = env_secret_key("SECRET_KEY", DEBUG)  # with DEBUG off, start-up refuses a missing or known key
ALLOWED_HOSTS = [h.strip() for h in env_str("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]
# HTTPS only in production (DEBUG off): the development server and `make run` speak plain HTTP. Behind a proxy
# that terminates TLS, SECURE_PROXY_SSL_HEADER names the header it sets (X-Forwarded-Proto), so requests it
# forwarded over HTTPS are not redirected again; set it only when the proxy overwrites that header.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if header := env_str("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + header.upper().replace("-", "_"), "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "strawberry_django",
    "usage",
    "analytics",
    "graphql_api",
    "tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "project.middleware.RefuseMalformedRequests",  # NUL characters: 400 before any view or database sees them
    "whitenoise.middleware.WhiteNoiseMiddleware",  # admin CSS/JS under gunicorn, without a separate web server
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "graphql_api.auth.ApiKeyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
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
            ]
        },
    }
]

DATABASES = {"default": database_from_url("DATABASE_URL", str(VAR_DIR / "db.sqlite3"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process and the Celery worker share the file without "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so tests can check several processes writing at once.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif env_bool("DATABASE_PREPARED_STATEMENTS", True):
    # Django turns psycopg's prepared statements off (for transaction-mode poolers older than PgBouncer 1.21),
    # which also ignores prepare=True. The write path's few fixed statements ask for it explicitly
    # (usage.db.fetch_one): parsing and planning them on every call cost 200+ microseconds a call. The ORM keeps
    # client-side binding, so the huge threshold only ever prepares those.
    DATABASES["default"]["OPTIONS"] = {"prepare_threshold": 2**31 - 1}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = redis_url("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Stored instants are aware UTC; reporting days use ANALYTICS_TIME_ZONE.
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = True
LANGUAGE_CODE = "en-us"
ANALYTICS_TIME_ZONE = env_time_zone("ANALYTICS_TIME_ZONE", "UTC")

# Spend limits in USD; per-user overrides live in the database.
# PostgreSQL only: partition the log table by month (applied by `migrate`; see usage/partitioning.py).
AI_USAGE_LOG_PARTITIONED = env_bool("AI_USAGE_LOG_PARTITIONED", False)
AI_DEFAULT_DAILY_LIMIT = env_money("AI_DEFAULT_DAILY_LIMIT", "10.00")
AI_DEFAULT_MONTHLY_LIMIT = env_money("AI_DEFAULT_MONTHLY_LIMIT", "100.00")
AI_SPEND_ALERT_RECIPIENTS = env_emails("AI_SPEND_ALERT_RECIPIENTS")
AI_PRICING_SOURCE_URL = env_str("AI_PRICING_SOURCE_URL")
# Per-call bounds: each token field, and the cost in USD (usage/validation.py says why these figures). The ceilings
# keep a single call within its log row's columns (bigint tokens, cost below 10^14).
AI_MAX_TOKENS_PER_CALL = env_int("AI_MAX_TOKENS_PER_CALL", 1_000_000_000, minimum=1, maximum=10**15)
AI_MAX_COST_PER_CALL = env_money("AI_MAX_COST_PER_CALL", "10000.00", maximum=Decimal(10**13))
# How long a process keeps price versions in memory before it reads them again (edits in this process clear it).
AI_PRICING_CACHE_SECONDS = env_int("AI_PRICING_CACHE_SECONDS", 30)
# How deep request_meta / response_meta may nest. Stored rows deeper than this are shown as a note, so the cap
# keeps every page and the API well inside the depth Python's json and templates can render.
AI_MAX_METADATA_DEPTH = env_int("AI_MAX_METADATA_DEPTH", 20, minimum=1, maximum=100)

# LangSmith: status and trace forwarding need an API key; forwarding also needs LANGSMITH_TRACING=true.
LANGSMITH_API_KEY = env_str("LANGSMITH_API_KEY")
LANGSMITH_ENDPOINT = env_str("LANGSMITH_ENDPOINT", "https://api.smith.langchain.com").rstrip("/")
LANGSMITH_WEB_URL = env_str("LANGSMITH_WEB_URL", "https://smith.langchain.com").rstrip("/")
LANGSMITH_PROJECT = env_str("LANGSMITH_PROJECT", "default")
LANGSMITH_TRACING = env_bool("LANGSMITH_TRACING", False)
LANGSMITH_IMPORT_PROJECTS = env_list("LANGSMITH_IMPORT_PROJECTS")
LANGSMITH_TIMEOUT_SECONDS = env_int("LANGSMITH_TIMEOUT_SECONDS", 3, minimum=1)

# Celery: Redis when REDIS_URL is set, otherwise an embedded filesystem broker that needs no service.
# The embedded broker names a host only so that kombu does not warn it is "reverting to default 'localhost'".
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://localhost//"
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
    }
    for folder in ("queue", "processed", "control"):
        (CELERY_BROKER_FOLDER / folder).mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A worker that starts before the broker is up keeps retrying, as it does after losing the broker later (stated,
# since Celery 6 stops assuming it).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery 6 behaviour, stated now: after a lost broker connection, late-acknowledged tasks are cancelled and
# redelivered (none of ours acknowledge late, so this only silences the warning at each reconnect).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ai-usage@localhost")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serve app static files without collectstatic during development and tests

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
