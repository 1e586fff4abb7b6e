"""Settings package. ``config.settings.base`` is what the demo and production use (every
value from an environment variable); ``config.settings.test`` is the test suite's, which
points at PostgreSQL and Redis on 127.0.0.1 unless told otherwise."""
