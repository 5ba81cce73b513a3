"""Per-project driver accounts: sealed at rest, never shown, used only by their project's
clusters, defaults below a template and credentials above it."""

from __future__ import annotations

from api_harness import Api
from sqlalchemy import select

from flotte.identity.accounts import Accounts
from flotte.state.tables import Base

PASSWORD = "pa55-word-never-shown"


async def test_an_account_is_sealed_and_never_returned(api: Api) -> None:
    api.user("alice", "lab")
    api.user("eve", "other")
    serving = api.ctx.serving
    lab = api.identity.tenancy.project("lab").id
    serving.accounts.add(
        lab,
        "openstack",
        {
            "openstack_auth_url": "http://127.0.0.1:5000/v3",
            "openstack_username": "lab-user",
            "openstack_password": PASSWORD,
            "openstack_project_name": "lab",
            "openstack_flavor_name": "m1.small",
        },
    )
    with api.svc.store.engine.connect() as conn:  # every row of every table, on any database
        dump = repr([list(conn.execute(select(t))) for t in Base.metadata.sorted_tables])
    assert PASSWORD not in dump and "lab-user" not in dump
    for path in api.svc.paths.data.rglob("*"):  # nor in any file of the installation
        assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path
    record = serving.tenancy.account([lab], "openstack")
    assert record is not None and "openstack_password" in record.keys
    # the blob is bound to its project: copied under another project it does not open
    other = api.identity.tenancy.project("other").id
    serving.tenancy.put_account(other, "openstack", record.sealed, record.keys)
    stolen = Accounts(serving.tenancy, serving.vault)
    try:
        stolen.options([other], "openstack")
        raise AssertionError("a sealed account opened for another project")
    except Exception as err:
        assert "cannot open" in str(err)
    serving.tenancy.delete_account(other, "openstack")

    await api.template("alice", "os", labels={"driver": "openstack"})
    await api.template("eve", "os", labels={"driver": "openstack"})
    r = await api.client.post(
        "/v1/clusters", json={"name": "x", "cluster_template_id": "os"}, headers=api.h("eve")
    )
    assert (
        r.status_code == 403
        and "no account for the openstack driver" in r.json()["errors"][0]["title"]
    )
    for path in ("/v1/clustertemplates", "/v1/clusters", "/v1/quotas", "/v1/stats"):
        body = (await api.client.get(path, headers=api.h("alice"))).text
        assert PASSWORD not in body and "lab-user" not in body


async def test_account_options_reach_the_driver(api: Api) -> None:
    api.user("alice", "lab")
    lab = api.identity.tenancy.project("lab").id
    # fake_quota is forced (no template field fills it); fake_flavor is a default
    api.ctx.serving.accounts.add(lab, "fake", {"fake_quota": 2, "fake_flavor": "f.account"})
    await api.template("alice", "small")
    uuid = await api.cluster("alice", "fits", "small", node_count=1)
    shown = await api.show("alice", uuid)
    assert shown["status"] == "CREATE_COMPLETE"
    internal = shown["stack_id"]
    spec = api.svc.store.cluster(internal).spec
    assert spec.options["fake_flavor"] == "f.account"  # the default reached the spec
    assert "fake_quota" not in spec.options  # forced options never go to the record
    await api.template("alice", "own-flavor", flavor_id="f.template")
    uuid = await api.cluster("alice", "big", "own-flavor", node_count=1)
    shown = await api.show("alice", uuid)
    assert shown["status"] == "CREATE_FAILED"
    assert "2 node(s)" in shown["status_reason"]  # the account's quota reached the driver
    assert api.svc.store.cluster(shown["stack_id"]).spec.options["fake_flavor"] == "f.template"
