"""Typed readers for settings that come from the environment.

Each reader fails at start-up with ImproperlyConfigured naming the variable and the problem, so a typo in a
deployment shows up at once instead of as a wrong number later.
"""

from __future__ import annotations

import os
import zoneinfo
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false")


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at most {maximum}")
    return value


def env_money(name: str, default: str, maximum: Decimal | None = None) -> Decimal:
    raw = os.environ.get(name, default).strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a decimal amount such as 10.00") from None
    if not value.is_finite() or value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a finite amount of zero or more")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at most {maximum}")
    return value


def env_time_zone(name: str, default: str = "UTC") -> str:
    raw = env_str(name, default) or default
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tzdata folder such as "Europe"
        raise ImproperlyConfigured(f"{name}={raw!r} is not an IANA time zone such as Europe/Berlin") from None
    return raw


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def env_emails(name: str) -> list[str]:
    addresses = env_list(name)
    for address in addresses:
        if "@" not in address:
            raise ImproperlyConfigured(f"{name} contains {address!r}, which is not an email address")
    return addresses


# Keys that must never sign production sessions: the old built-in development key and the .env.example placeholder.
DEVELOPMENT_SECRET_KEY = "insecure-development-key-set-SECRET_KEY-in-production"
PLACEHOLDER_SECRET_KEYS = {DEVELOPMENT_SECRET_KEY, "change-me"}


def env_secret_key(name: str, debug: bool) -> str:
    """The signing key. Only a development server (DEBUG on) may run on the built-in key; anything else refuses to
    start rather than sign sessions and password resets with a key anyone can read in the source."""
    key = env_str(name)
    if key and key not in PLACEHOLDER_SECRET_KEYS and not key.startswith(("insecure-", "django-insecure-")):
        return key
    if debug:
        return key or DEVELOPMENT_SECRET_KEY
    raise ImproperlyConfigured(
        f"{name} must be set to a long random value when DEBUG is off (it is "
        f"{'a known insecure placeholder' if key else 'unset'}); generate one with "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )


def database_from_url(name: str, default_sqlite_path: str) -> dict[str, object]:
    """DATABASE_URL as a Django DATABASES entry: postgres://user:pass@host:port/db or sqlite:///path."""
    url = env_str(name)
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": default_sqlite_path}
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path[1:] if path.startswith("//") else path}
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        if not parts.path.strip("/"):
            raise ImproperlyConfigured(f"{name}={url!r} names no database; add /dbname")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"{name}={url!r}: the scheme must be postgres:// or sqlite://")


def redis_url(name: str) -> str:
    url = env_str(name)
    if url and urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name}={url!r}: the scheme must be redis://, rediss:// or unix://")
    return url
