"""The embedded service's job queue: requests waiting for or run by the in-process
worker of ``flotte serve`` on SQLite. On PostgreSQL the queue is procrastinate's own
tables (made by ``flotte.jobs.postgres``).

And ``cluster_revisions``: a counter per project, raised by a trigger whenever one of
its clusters is inserted, updated or deleted, whoever writes (a serve process, a worker
on another machine, the CLI). ``GET /v1/clusters`` keeps its last answer and checks one
row of this table instead of reading and rendering every cluster again.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The project of the changed row ('' for the CLI's own clusters), one row per project.
_SQLITE_BUMP = """
INSERT INTO cluster_revisions (scope, n) VALUES (coalesce({row}.project, ''), 1)
ON CONFLICT (scope) DO UPDATE SET n = n + 1;
"""
_POSTGRES_FUNCTION = """
CREATE FUNCTION flotte_cluster_revision() RETURNS trigger AS $$
BEGIN
    INSERT INTO cluster_revisions (scope, n)
    VALUES (coalesce(CASE WHEN TG_OP = 'DELETE' THEN OLD.project ELSE NEW.project END, ''), 1)
    ON CONFLICT (scope) DO UPDATE SET n = cluster_revisions.n + 1;
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""
_EVENTS = (("insert", "NEW"), ("update", "NEW"), ("delete", "OLD"))


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("project", sa.String(64)),
        sa.Column("cluster", sa.String(64), index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "cluster_revisions",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        op.execute(
            "CREATE TRIGGER cluster_revision AFTER INSERT OR UPDATE OR DELETE ON clusters "
            "FOR EACH ROW EXECUTE FUNCTION flotte_cluster_revision()"
        )
        return
    for event, row in _EVENTS:
        op.execute(
            f"CREATE TRIGGER cluster_revision_{event} AFTER {event.upper()} ON clusters "
            f"BEGIN {_SQLITE_BUMP.format(row=row)} END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER cluster_revision ON clusters")
        op.execute("DROP FUNCTION flotte_cluster_revision()")
    else:
        for event, _ in _EVENTS:
            op.execute(f"DROP TRIGGER cluster_revision_{event}")
    op.drop_table("cluster_revisions")
    op.drop_table("jobs")
