"""Every partner's rows are seen only by the firm's staff and the platform's own jobs: a partner (or the back
office) can never obtain ``Tenant.everyone``, and no code builds it without a staff proof."""

from __future__ import annotations

import pytest

from app.audit.service import Actor
from app.auth.deps import Principal
from app.auth.scopes import PrincipalKind
from app.core.tenancy import NotStaff, Tenant


def _principal(kind: PrincipalKind, partner_id: str | None) -> Principal:
    return Principal("cli_x", kind, frozenset(), partner_id, None, "tok_x")


@pytest.mark.parametrize("partner_id", ["ptn_a", None])
@pytest.mark.parametrize("kind", [kind for kind in PrincipalKind if kind is not PrincipalKind.staff])
def test_no_principal_but_staff_obtains_every_partner(kind: PrincipalKind, partner_id: str | None) -> None:
    principal = _principal(kind, partner_id)
    assert principal.tenant.partner_id == (partner_id or "")  # its own rows, or none at all
    with pytest.raises(NotStaff):
        Tenant.everyone(principal)
    with pytest.raises(NotStaff):
        Tenant.everyone(Actor(principal.client_id, principal.kind.value))


def test_staff_and_system_obtain_every_partner() -> None:
    staff = _principal(PrincipalKind.staff, None)
    assert staff.tenant.partner_id is None
    assert Tenant.everyone(staff) == Tenant.everyone(Actor.system("job")) == staff.tenant


def test_every_partner_cannot_be_built_without_a_proof() -> None:
    with pytest.raises(TypeError):
        Tenant.everyone()  # type: ignore[call-arg]
    with pytest.raises(NotStaff):
        Tenant(None)


def test_rows_are_created_for_the_callers_own_partner_only() -> None:
    assert Tenant.of_partner("ptn_a").own_partner_id == "ptn_a"
    assert Tenant.of_partner(None).own_partner_id == ""
    with pytest.raises(NotStaff):
        _ = Tenant.everyone(Actor.system("job")).own_partner_id
