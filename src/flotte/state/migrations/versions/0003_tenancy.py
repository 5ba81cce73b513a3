"""flotte serve: projects, users, driver accounts, quotas, per-cluster CAs, serve
processes; clusters and templates get their project, display name and Magnum fields.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True))


def upgrade() -> None:
    for table in ("clusters", "templates"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("project", sa.String(64)))
            batch.add_column(sa.Column("display_name", sa.String(255)))
            batch.add_column(sa.Column("magnum", sa.JSON))
            batch.create_index(f"ix_{table}_project", ["project"])
            batch.create_index(f"ix_{table}_uuid", ["uuid"])
    op.create_table(
        "projects",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        _created(),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "project",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
        _created(),
    )
    op.create_table(
        "accounts",
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("driver", sa.String(32), primary_key=True),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("keys", sa.JSON, nullable=False),
        _created(),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "quotas",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("resource", sa.String(32), nullable=False),
        sa.Column("hard_limit", sa.Integer, nullable=False),
        _created(),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("project", "resource"),
    )
    op.create_table(
        "admissions",
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("serial", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "cluster_cas",
        sa.Column(
            "cluster",
            sa.String(64),
            sa.ForeignKey("clusters.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("ca_pem", sa.Text, nullable=False),
        sa.Column("ca_key", sa.Text, nullable=False),
        sa.Column("client_pem", sa.Text, nullable=False),
        sa.Column("client_key", sa.Text, nullable=False),
        _created(),
    )
    op.create_table(
        "serve_processes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("binary", sa.String(64), nullable=False),
        sa.Column("roles", sa.String(32), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("report_count", sa.Integer, nullable=False, server_default="0"),
        _created(),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    for name in (
        "serve_processes",
        "cluster_cas",
        "admissions",
        "quotas",
        "accounts",
        "users",
        "projects",
    ):
        op.drop_table(name)
    for table in ("templates", "clusters"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_uuid")
            batch.drop_index(f"ix_{table}_project")
            batch.drop_column("magnum")
            batch.drop_column("display_name")
            batch.drop_column("project")
