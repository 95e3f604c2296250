"""Settings for the test suite and the type checker: the service's own settings, with a test-only SECRET_KEY and
plain HTTP (the test client, live servers and the browser tests speak HTTP to 127.0.0.1).

Written into the environment, not just set here, so every process a test starts (workers, helpers, manage.py)
inherits them. A value already in the environment wins.
"""

from __future__ import annotations

import os

TEST_ENVIRONMENT = {
    "SECRET_KEY": "tests-only-secret-key-never-used-outside-the-test-suite-0123456789",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "SECURE_HSTS_SECONDS": "0",
}
for name, value in TEST_ENVIRONMENT.items():
    os.environ.setdefault(name, value)

from project.settings import *  # noqa: E402, F403
