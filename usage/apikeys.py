"""API keys: created with a random secret shown once, stored as a hash, looked up by that hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone

from usage.models import ApiKey

KEY_PREFIX = "aik_"
# last_used_at is a hint for admins, not an audit log: writing it at most once a minute keeps reads read-only.
TOUCH_EVERY = timedelta(minutes=1)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_key(user: Any, name: str) -> tuple[ApiKey, str]:
    """A new key for `user`; returns the row and the key itself, which is not stored and cannot be shown again."""
    public = secrets.token_hex(6)
    raw = f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(user=user, name=name, prefix=f"{KEY_PREFIX}{public}", key_hash=hash_key(raw))
    return key, raw


def key_for(raw: str) -> ApiKey | None:
    """The key (with its active user loaded), or None for an unknown, revoked or malformed key or an inactive
    user."""
    if not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        return None
    key = ApiKey.objects.select_related("user").filter(key_hash=hash_key(raw), revoked_at__isnull=True).first()
    if key is None or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def revoke(keys: Any) -> int:
    return int(keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now()))
