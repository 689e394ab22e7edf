"""Test setup: hypothesis profiles and the device under test.

`pytest` runs the small "ci" profile; `pytest --hypothesis-profile=thorough`
draws many more shapes and values. `MINILLM_DEVICE=gpu pytest` runs the same
suite on CuPy.
"""

import os
import tempfile

from hypothesis import HealthCheck, settings

import minillm.backend  # before minillm.strict: on the strict device, backend imports strict itself
import minillm.strict

# tokenizers and token streams that tests build are cached apart from the user's own cache
os.environ.setdefault("MINILLM_CACHE", tempfile.mkdtemp(prefix="minillm-test-cache-"))
for name in ("MINILLM_DATA", "MINILLM_CACHE"):  # absolute, so commands the tests run in other folders find them
    if os.environ.get(name):
        os.environ[name] = os.path.abspath(os.environ[name])

settings.register_profile("ci", max_examples=6, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# on the strict device (minillm/strict.py) the tests' own assertions may read device values; the library may not
minillm.strict.READERS.append(os.path.dirname(os.path.abspath(__file__)))
