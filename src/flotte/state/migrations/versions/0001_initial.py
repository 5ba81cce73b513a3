"""Initial schema: meta, templates, clusters, machines, journal.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _times() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    ]


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "templates",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "clusters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("driver", sa.String(32), nullable=False),
        sa.Column("coe", sa.String(16), nullable=False),
        sa.Column("template", sa.String(64)),
        sa.Column("master_count", sa.Integer, nullable=False),
        sa.Column("node_count", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("shared", sa.JSON, nullable=False),
        sa.Column("coe_data", sa.JSON, nullable=False),
        *_times(),
    )
    op.create_table(
        "machines",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("driver", sa.String(32), nullable=False),
        sa.Column(
            "cluster",
            sa.String(64),
            sa.ForeignKey("clusters.name", ondelete="CASCADE"),
            index=True,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("group", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("endpoint", sa.JSON, nullable=False),
        sa.Column("shared", sa.JSON, nullable=False),
        *_times(),
    )
    op.create_table(
        "journal",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(80), nullable=False, index=True),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("step", sa.String(160), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    for table in ("journal", "machines", "clusters", "templates", "meta"):
        op.drop_table(table)
