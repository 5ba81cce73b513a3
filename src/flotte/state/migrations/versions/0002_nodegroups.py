"""Node groups, typed specs, health columns; secrets cleaned out of existing rows.

- ``nodegroups``: one row per node group (Magnum's NodeGroup), made for existing
  clusters from their master and node counts (``default-master``, ``default-worker``).
- ``clusters.spec`` becomes a ClusterSpec without node groups; ``health_status`` and
  ``health_status_reason`` columns.
- ``machines``: ``index`` and ``host`` columns; node groups renamed to Magnum's; a lone
  machine's spec becomes its ClusterSpec (kind machine); a node keeps its engine only.
- Secrets that earlier versions stored in rows (driver passwords, application
  credential secrets, EC2 keys, every driver's options collected from the environment)
  are deleted: they live in 0600 files or come from clouds.yaml / OS_* / AWS profiles.

Revision ID: 0002
Revises: 0001
"""

import uuid
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Every option that earlier versions declared secret, and words that mark a secret in
# options of drivers from outside packages.
SECRET_KEYS = {
    "openstack_password",
    "openstack_application_credential_secret",
    "ec2_access_key",
    "ec2_secret_key",
    "ec2_session_token",
}
SECRET_WORDS = ("password", "secret", "token", "private_key")
GROUPS = {"manager": "default-master", "worker": "default-worker"}


def clean(options: Any, driver: str) -> dict[str, Any]:
    """Options of ``driver`` only, without secrets (earlier versions kept every driver's)."""
    if not isinstance(options, dict):
        return {}
    out = {}
    for key, value in options.items():
        if key in SECRET_KEYS or any(w in key for w in SECRET_WORDS):
            continue
        if key in ("hosts_per_node", "extra_hosts"):
            continue
        # Options of other drivers came from their environment variables (OS_*...).
        prefix = key.split("_", 1)[0]
        if prefix in ("openstack", "ec2", "local") and prefix != driver:
            continue
        out[key] = value
    return out


def _index(name: str) -> int:
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def upgrade() -> None:
    op.create_table(
        "nodegroups",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column(
            "cluster",
            sa.String(64),
            sa.ForeignKey("clusters.name", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default=""),
        sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("cluster", "name"),
    )
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("uuid", sa.String(36), nullable=False, server_default=""))
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(
            sa.Column("health_status", sa.String(16), nullable=False, server_default="UNKNOWN")
        )
        batch.add_column(
            sa.Column("health_status_reason", sa.JSON, nullable=False, server_default="{}")
        )
    with op.batch_alter_table("machines") as batch:
        batch.add_column(sa.Column("index", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("host", sa.String(255)))

    conn = op.get_bind()
    meta = sa.MetaData()
    templates = sa.Table("templates", meta, autoload_with=conn)
    clusters = sa.Table("clusters", meta, autoload_with=conn)
    groups = sa.Table("nodegroups", meta, autoload_with=conn)
    machines = sa.Table("machines", meta, autoload_with=conn)

    for row in conn.execute(sa.select(templates)).mappings().all():
        spec = dict(row["spec"] or {})
        spec["driver_options"] = clean(spec.get("driver_options"), spec.get("driver", ""))
        conn.execute(
            templates.update()
            .where(templates.c.name == row["name"])
            .values(spec=spec, uuid=str(uuid.uuid4()))
        )

    for row in conn.execute(sa.select(clusters)).mappings().all():
        old = dict(row["spec"] or {})
        driver = row["driver"]
        options = clean(old.get("options"), driver)
        spec = {
            "name": row["name"],
            "kind": "cluster",
            "template": old.get("template"),
            "coe": row["coe"],
            "driver": driver,
            "options": options,
            "engine": old.get("engine") or {},
            "labels": old.get("labels") or {},
            "create_timeout": float(old.get("timeout") or 60),
            "no_provision": bool(old.get("no_provision")),
            "template_fields": old.get("template_fields") or {},
        }
        conn.execute(clusters.update().where(clusters.c.name == row["name"]).values(spec=spec))
        master_opts = clean(old.get("manager_options"), driver)
        for position, (name, role, count, opts) in enumerate(
            [
                ("default-master", "master", row["master_count"], master_opts),
                ("default-worker", "worker", row["node_count"], {}),
            ]
        ):
            group = {
                "name": name,
                "role": role,
                "node_count": count,
                "min_node_count": 1 if role == "master" else 0,
                "options": opts,
            }
            conn.execute(
                groups.insert().values(
                    uuid=str(uuid.uuid4()),
                    cluster=row["name"],
                    name=name,
                    position=position,
                    spec=group,
                    status=row["status"],
                    status_reason="",
                    created_at=row["created_at"],
                    updated_at=row["updated_at"],
                )
            )

    for row in conn.execute(sa.select(machines)).mappings().all():
        old = dict(row["spec"] or {})
        record = row["record"] or {}
        data = record.get("data") or {}
        host = data.get("ssh_host") if row["driver"] == "ssh" else None
        if row["cluster"]:
            new: dict[str, Any] = {"engine": old.get("engine") or {}}
            group_name = GROUPS.get(row["group"], row["group"])
        else:
            options = clean(old.get("options"), row["driver"])
            new = {
                "name": row["name"],
                "kind": "machine",
                "coe": None,
                "driver": row["driver"],
                "options": options,
                "engine": old.get("engine") or {},
                "no_provision": bool(old.get("no_provision")),
                "nodegroups": [
                    {
                        "name": "default",
                        "role": "machine",
                        "node_count": 1,
                        "hosts": [host] if host else [],
                    }
                ],
            }
            group_name = "default"
        conn.execute(
            machines.update()
            .where(machines.c.name == row["name"])
            .values(spec=new, group=group_name, index=_index(row["name"]), host=host)
        )


def downgrade() -> None:
    op.drop_table("nodegroups")
    with op.batch_alter_table("machines") as batch:
        batch.drop_column("host")
        batch.drop_column("index")
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("health_status_reason")
        batch.drop_column("health_status")
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("uuid")
