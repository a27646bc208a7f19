"""The argon2id profiles the service hashes with (the suite hashes at a test cost, ``tests/conftest.py``).

Client secrets: OWASP's minimum argon2id profile (19 MiB, 2 passes); people's passwords: OWASP's recommended one
(64 MiB, 3 passes). A hash made by either carries its profile, and is verified by it.
"""

from __future__ import annotations

import pytest
from argon2 import Type, extract_parameters

from tests.conftest import PRODUCTION_HASHERS


@pytest.mark.parametrize(
    ("hasher", "memory_kib", "passes"),
    [("secret", 19_456, 2), ("password", 65_536, 3)],
)
def test_the_production_profiles_are_owasps(hasher: str, memory_kib: int, passes: int) -> None:
    production = PRODUCTION_HASHERS[hasher]
    assert (production.memory_cost, production.time_cost, production.parallelism) == (memory_kib, passes, 1)
    assert production.type is Type.ID
    hashed = production.hash("correct horse battery staple")
    assert hashed.startswith(f"$argon2id$v=19$m={memory_kib},t={passes},p=1$")
    parameters = extract_parameters(hashed)
    assert (parameters.memory_cost, parameters.time_cost, parameters.type) == (memory_kib, passes, Type.ID)
    assert production.verify(hashed, "correct horse battery staple")
