import pytest

from amtheory.testing.conformance import CHECKS, run_check
from amtheory.testing.registry import REGISTRY


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_conformance(name, check):
    run_check(check, REGISTRY[name], seed=1234)
