"""token standing notices

Every API process keeps the standing of the tokens it serves (client active, partner active, token not revoked,
the client's rate) in memory, and forgets it when the database says it changed: a trigger on each table the
standing is read from sends ``NOTIFY alliance_token_standing`` with what changed (``client:<id>``,
``partner:<id>``, ``token:<jti>``). A notice is delivered when its transaction commits, to every listening process,
whichever process, command or console made the change (``app/auth/standing.py``).

Revision ID: c19a5e0d7b21
Revises: c1a0c0ffee17
Create Date: 2026-12-03 17:30:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c19a5e0d7b21"
down_revision: str | None = "c1a0c0ffee17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table, what the notice names, the key column, the columns whose change moves a token's standing
_WATCHED = (
    ("oauth_clients", "client", "id", ("status", "partner_id", "rate_limit_per_second")),
    ("partners", "partner", "id", ("status", "rate_limit_tier")),
)


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION notify_token_standing() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                PERFORM pg_notify('alliance_token_standing', TG_ARGV[0] || ':' || (to_jsonb(NEW) ->> TG_ARGV[1]));
            ELSE
                PERFORM pg_notify('alliance_token_standing', TG_ARGV[0] || ':' || (to_jsonb(OLD) ->> TG_ARGV[1]));
            END IF;
            RETURN NULL;
        END $$
        """
    )
    for table, name, key, columns in _WATCHED:
        changed = " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in columns)
        op.execute(
            f"CREATE TRIGGER {table}_standing_changed AFTER UPDATE ON {table} FOR EACH ROW "
            f"WHEN ({changed}) EXECUTE FUNCTION notify_token_standing('{name}', '{key}')"
        )
        op.execute(
            f"CREATE TRIGGER {table}_standing_removed AFTER DELETE ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION notify_token_standing('{name}', '{key}')"
        )
    op.execute(
        "CREATE TRIGGER revoked_tokens_standing_changed AFTER INSERT ON revoked_tokens FOR EACH ROW "
        "EXECUTE FUNCTION notify_token_standing('token', 'jti')"
    )
    # A sandbox partner's test clock is read with the standing: its advance is a change of the partner's standing.
    op.execute(
        "CREATE TRIGGER sandbox_clocks_standing_changed AFTER INSERT OR UPDATE OR DELETE ON sandbox_clocks "
        "FOR EACH ROW EXECUTE FUNCTION notify_token_standing('partner', 'partner_id')"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER sandbox_clocks_standing_changed ON sandbox_clocks")
    op.execute("DROP TRIGGER revoked_tokens_standing_changed ON revoked_tokens")
    for table, _, _, _ in reversed(_WATCHED):
        op.execute(f"DROP TRIGGER {table}_standing_removed ON {table}")
        op.execute(f"DROP TRIGGER {table}_standing_changed ON {table}")
    op.execute("DROP FUNCTION notify_token_standing()")
