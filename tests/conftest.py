"""Settings for every test: no usage telemetry from Prefect's temporary test servers (set before any
test module imports prefect); exported ONNX graphs cached in a temporary folder, not in the user's cache
folder in their home (where the shipped weights' graph goes by default: tests/test_trace_onnx_cache.py)."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
if "ECGML_CACHE_DIR" not in os.environ:
    os.environ["ECGML_CACHE_DIR"] = tempfile.mkdtemp(prefix="ecgml-test-cache-")
    atexit.register(shutil.rmtree, os.environ["ECGML_CACHE_DIR"], ignore_errors=True)
