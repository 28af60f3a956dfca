"""Hypothesis profiles of the test suite, and per-test settings whose example counts scale with the loaded profile.

``amtheory`` (the default, and what CI runs): derandomized, no deadline, 100 examples unless a test asks for fewer.
``thorough`` (run by hand): ten times as many examples, a fresh random draw on every run (failures are kept in the
local example database and replayed first), no deadline. A test that wants another count than the profile's uses
:func:`property_settings`, whose count is the one under ``amtheory`` and is multiplied by the same factor as the
profile's, so ``thorough`` raises every test's count tenfold and never lowers one.
"""

from __future__ import annotations

from hypothesis import settings

#: Examples per test under the ``amtheory`` profile (hypothesis's default); per-test counts are relative to it.
BASE_EXAMPLES = 100

#: Profile name -> its settings.
PROFILES = {
    "amtheory": dict(derandomize=True, deadline=None, print_blob=True),
    "thorough": dict(max_examples=10 * BASE_EXAMPLES, derandomize=False, deadline=None, print_blob=True),
}

_SCALED: dict[int, settings] = {}


def register_profiles() -> None:
    """Register every profile of :data:`PROFILES` with hypothesis."""
    for name, kwargs in PROFILES.items():
        settings.register_profile(name, **kwargs)


def scale() -> float:
    """The loaded profile's example count relative to :data:`BASE_EXAMPLES` (1 under ``amtheory``)."""
    return settings.default.max_examples / BASE_EXAMPLES


def property_settings(max_examples: int, **kwargs) -> settings:
    """Settings for one property test: ``max_examples`` examples under ``amtheory``, times :func:`scale` under the
    loaded profile (at least one). Randomization and deadline stay the profile's, so they are not accepted here."""
    for name in ("derandomize", "deadline", "database"):
        if name in kwargs:
            raise ValueError(f"{name}: set by the profile (amtheory.testing.profiles), not per test")
    s = settings(max_examples=max(1, round(max_examples * scale())), **kwargs)
    _SCALED[id(s)] = s
    return s


def is_profile_scaled(s: settings) -> bool:
    """Whether ``s`` is the loaded profile's settings or was made by :func:`property_settings` (a test's settings
    made any other way could fix its example count below the profile's)."""
    return s is settings.default or _SCALED.get(id(s)) is s
