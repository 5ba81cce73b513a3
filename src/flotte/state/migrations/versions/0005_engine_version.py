"""``machines.engine_version``: the Docker version each node's engine last reported.

Written when a node is provisioned or joins its swarm and by every health check that
hears its engine answer, so the cluster page and ``cluster show`` read it from the store
instead of asking every engine again. Empty until an engine has answered.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.add_column(
            sa.Column("engine_version", sa.String(64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.drop_column("engine_version")
