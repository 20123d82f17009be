"""Settings for every test: no usage telemetry from Prefect's temporary test servers (set before any
test module imports prefect)."""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
