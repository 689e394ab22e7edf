"""Test setup: hypothesis profiles and the device under test.

`pytest` runs the small "ci" profile; `pytest --hypothesis-profile=thorough`
draws many more shapes and values. `MINILLM_DEVICE=gpu pytest` runs the same
suite on CuPy.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=6, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
