"""python-nomad's `system` calls (forced garbage collection, job summaries
reconciled) against a real Caravan dev agent, and with ACLs."""


import nomad
import nomad.api.exceptions as errors
import pytest

from conftest import Agent, ready_dev_agent, wait_for


@pytest.fixture(scope="module")
def system_agent():
    started = ready_dev_agent()
    yield started
    started.stop()


def test_gc_and_reconcile_succeed(system_agent):
    client = nomad.Nomad(address=system_agent.address, timeout=10)
    assert client.system.initiate_garbage_collection() is True
    assert client.system.reconcile_summaries() is True


def test_gc_removes_a_finished_batch_job(system_agent):
    client = nomad.Nomad(address=system_agent.address, timeout=10)
    job = {
        "ID": "finished", "Type": "batch",
        "TaskGroups": [{"Name": "g", "Tasks": [{
            "Name": "t", "Driver": "raw_exec",
            "Config": {"command": "/bin/true", "args": []}}]}],
    }
    client.jobs.register_job({"Job": job})
    wait_for(lambda: [a for a in client.job.get_allocations("finished")
                      if a["ClientStatus"] == "complete"], "the batch run")
    wait_for(lambda: client.job.get_job("finished")["Status"] == "dead",
             "the batch job to be dead")

    assert client.system.initiate_garbage_collection() is True
    with pytest.raises(errors.URLNotFoundNomadException):
        client.job.get_job("finished")
    assert "finished" not in [j["ID"] for j in client.jobs.get_jobs()]


def test_only_a_management_token_may():
    started = Agent(["-dev", "--acl-enabled"])
    try:
        anonymous = nomad.Nomad(address=started.address, timeout=10)
        secret = anonymous.acl.generate_bootstrap()["SecretID"]
        with pytest.raises(errors.URLNotAuthorizedNomadException):
            anonymous.system.initiate_garbage_collection()
        with pytest.raises(errors.URLNotAuthorizedNomadException):
            anonymous.system.reconcile_summaries()
        admin = nomad.Nomad(address=started.address, token=secret, timeout=10)
        assert admin.system.initiate_garbage_collection() is True
        assert admin.system.reconcile_summaries() is True
    finally:
        started.stop()
