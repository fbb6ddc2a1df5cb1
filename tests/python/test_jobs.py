"""python-nomad's job calls against a real Caravan agent.

`validate_job` returns the raw response (python-nomad does not decode it).
"""

import nomad
import pytest

from conftest import Agent


@pytest.fixture(scope="module")
def job_agent():
    started = Agent(["-dev"])
    yield started
    started.stop()


def job(**overrides):
    spec = {
        "ID": "web",
        "TaskGroups": [
            {"Name": "web", "Tasks": [{"Name": "app", "Driver": "raw_exec",
                                       "Config": {"command": "/bin/sleep"}}]}
        ],
    }
    spec.update(overrides)
    return spec


def test_validate_accepts_a_good_job(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    answer = client.validate.validate_job({"Job": job()}).json()
    assert answer["ValidationErrors"] is None
    assert answer["Error"] == ""
    assert answer["DriverConfigValidated"] is True


def test_validate_lists_every_problem_nested(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    bad = job(Priority=500, TaskGroups=[{"Name": "cache", "Tasks": [{"Name": "redis"}]}])
    answer = client.validate.validate_job({"Job": bad}).json()
    assert answer["ValidationErrors"] == [
        "job priority must be between [1, 100]",
        "Task group cache validation failed: 1 error occurred:\n"
        "\t* Task redis validation failed: 1 error occurred:\n"
        "\t* Missing task driver\n\n\n\n",
    ]
    assert answer["Error"].startswith("2 errors occurred:\n\t* job priority")


def test_validate_without_a_job_is_a_bad_request(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    with pytest.raises(nomad.api.exceptions.BadRequestNomadException):
        client.validate.validate_job({})
