"""python-nomad's namespace calls (`namespaces.get_namespaces`,
`namespace.create_namespace` / `update_namespace` / `get_namespace` /
`delete_namespace`) against a real Caravan dev agent, and a job registered
into a namespace created that way."""


import nomad
import nomad.api.exceptions as errors
import pytest

from conftest import ready_dev_agent, wait_for


@pytest.fixture(scope="module")
def namespace_agent():
    started = ready_dev_agent()
    yield started
    started.stop()


def names(namespaces):
    return [namespace["Name"] for namespace in namespaces]


def test_namespaces_are_created_read_updated_and_deleted(namespace_agent):
    client = nomad.Nomad(address=namespace_agent.address, timeout=10)
    listed = client.namespaces.get_namespaces()
    assert names(listed) == ["default"]
    assert listed[0]["Description"] == "Default shared namespace"

    created = client.namespace.create_namespace(
        {"Name": "crud", "Description": "made by python-nomad", "Meta": {"owner": "ops"}})
    assert created.status_code == 200
    assert created.text == ""
    assert int(created.headers["X-Nomad-Index"]) > 0

    crud = client.namespace.get_namespace("crud")
    assert crud["Name"] == "crud"
    assert crud["Description"] == "made by python-nomad"
    assert crud["Meta"] == {"owner": "ops"}
    assert crud["CreateIndex"] == int(created.headers["X-Nomad-Index"])
    assert "crud" in client.namespace
    assert "crud" in client.namespaces
    assert client.namespaces["crud"]["Description"] == "made by python-nomad"
    assert names(client.namespaces.get_namespaces()) == ["crud", "default"]
    assert names(client.namespaces.get_namespaces(prefix="cr")) == ["crud"]

    updated = client.namespace.update_namespace("crud", {"Name": "crud", "Description": "new"})
    assert updated.status_code == 200
    crud_now = client.namespace.get_namespace("crud")
    assert crud_now["Description"] == "new"
    assert crud_now["CreateIndex"] == crud["CreateIndex"]
    assert crud_now["ModifyIndex"] > crud["ModifyIndex"]

    with pytest.raises(errors.BadRequestNomadException) as mismatch:
        client.namespace.update_namespace("crud", {"Name": "other"})
    assert mismatch.value.nomad_resp.text == "Namespace name does not match request path"
    with pytest.raises(errors.BaseNomadException) as invalid:
        client.namespace.create_namespace({"Name": "a b"})
    assert invalid.value.nomad_resp.status_code == 500
    assert invalid.value.nomad_resp.text.startswith(
        'Invalid namespace "a b": 1 error occurred:\n\t* invalid name "a b"')
    with pytest.raises(errors.BaseNomadException) as default:
        client.namespace.delete_namespace("default")
    assert default.value.nomad_resp.status_code == 500
    assert "can not delete default namespace" in default.value.nomad_resp.text

    deleted = client.namespace.delete_namespace("crud")
    assert deleted.status_code == 200
    with pytest.raises(errors.URLNotFoundNomadException) as missing:
        client.namespace.get_namespace("crud")
    assert missing.value.nomad_resp.text == "Namespace not found"
    assert "crud" not in client.namespace
    assert names(client.namespaces.get_namespaces()) == ["default"]


def sleep_job(namespace):
    return {
        "ID": "app",
        "Namespace": namespace,
        "TaskGroups": [{"Name": "g", "Tasks": [{
            "Name": "t", "Driver": "raw_exec", "KillTimeout": 2_000_000_000,
            "Config": {"command": "/bin/sleep", "args": ["600"]}}]}],
    }


def test_a_job_registers_into_a_created_namespace_only(namespace_agent):
    client = nomad.Nomad(address=namespace_agent.address, timeout=10)
    team = nomad.Nomad(address=namespace_agent.address, namespace="team", timeout=10)

    with pytest.raises(errors.BaseNomadException) as nonexistent:
        team.job.register_job("app", {"Job": sleep_job("team")})
    assert nonexistent.value.nomad_resp.status_code == 500
    assert nonexistent.value.nomad_resp.text == 'job "app" is in nonexistent namespace "team"'

    client.namespace.create_namespace({"Name": "team"})
    try:
        registered = team.job.register_job("app", {"Job": sleep_job("team")})
        assert registered["EvalID"] != ""
        assert team.job.get_job("app")["Namespace"] == "team"
        # Only in its namespace: the default one has no such job.
        with pytest.raises(errors.URLNotFoundNomadException):
            client.job.get_job("app")
        assert [job["ID"] for job in team.jobs.get_jobs()] == ["app"]

        # Live work keeps the namespace.
        with pytest.raises(errors.BaseNomadException) as live:
            client.namespace.delete_namespace("team")
        assert 'namespace "team" has non-terminal jobs in regions: [global]' \
            in live.value.nomad_resp.text
    finally:
        team.job.deregister_job("app", namespace="team", purge=True)

    def deleted():
        try:
            return client.namespace.delete_namespace("team").status_code == 200
        except errors.BaseNomadException as refused:
            assert "non-terminal allocations" in refused.nomad_resp.text, refused.nomad_resp.text
            return False

    wait_for(deleted, "the namespace to be deletable once its job stopped")
    assert names(client.namespaces.get_namespaces()) == ["default"]
