"""The test suite's settings: PostgreSQL and Redis on 127.0.0.1 unless the environment
says otherwise (bin/test makes sure both answer)."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/shepherd")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/14")
# Test sessions running at once share the broker: each trains on its own queue (the
# workers the tests start inherit the name through the environment).
os.environ.setdefault("SHEPHERD_TRAINING_QUEUE", f"training-test-{os.getpid()}")

from .base import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files from the source folders, as runserver would (no collectstatic).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
