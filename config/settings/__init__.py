"""Settings package: everything comes from environment variables (see base.py).

`config.settings` is what the demo and production use; `config.settings.test` is the
test suite's, which points at PostgreSQL and Redis on 127.0.0.1 unless told otherwise.
"""

from .base import *  # noqa: F403
