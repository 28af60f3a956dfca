"""Test-wide settings: property-based tests are derandomized and have no deadline, so a run is repeatable and a
slow shared machine does not fail them (per-test settings may only tighten the example counts)."""

from hypothesis import settings

settings.register_profile("amtheory", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("amtheory")
