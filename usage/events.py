"""Signals the usage app sends; other apps (the background jobs) listen without the domain importing them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after a recorded call took its user's spend for today or this month over an alert threshold.
# Keyword argument: user_id.
spend_threshold_crossed = Signal()
