"""python-nomad's node calls against a real Caravan agent with a client."""


import nomad
import nomad.api.exceptions as errors
import pytest

from conftest import Agent, wait_for


@pytest.fixture(scope="module")
def node_agent():
    started = Agent(["-dev", "-node", "pynode1"])
    yield started
    started.stop()


def test_node_calls(node_agent):
    client = nomad.Nomad(address=node_agent.address, timeout=10)
    listed = wait_for(client.nodes.get_nodes, "the node to register")
    assert [n["Name"] for n in listed] == ["pynode1"]
    node_id = listed[0]["ID"]

    # Lookup by name (python-nomad scans the list by ID or Name).
    assert client.nodes["pynode1"]["ID"] == node_id
    assert client.nodes[node_id]["Name"] == "pynode1"
    assert "pynode1" in client.nodes
    with pytest.raises(KeyError):
        client.nodes["no-such-node"]

    node = client.node.get_node(node_id)
    assert node["Name"] == "pynode1"
    assert node["Attributes"]["kernel.name"] == "linux"
    assert client.node[node_id]["ID"] == node_id
    assert client.node.get_allocations(node_id) == []

    evaluation = client.node.evaluate_node(node_id)
    assert evaluation["EvalIDs"] is None

    ineligible = client.node.eligible_node(node_id, ineligible=True)
    assert ineligible["Index"] > 0
    assert client.node.get_node(node_id)["SchedulingEligibility"] == "ineligible"
    eligible = client.node.eligible_node(node_id, eligible=True)
    assert eligible["Index"] > 0
    assert client.node.get_node(node_id)["SchedulingEligibility"] == "eligible"

    drained = client.node.drain_node_with_spec(
        node_id, {"Deadline": 60_000_000_000, "IgnoreSystemJobs": False}
    )
    assert drained["NodeModifyIndex"] > 0
    done = wait_for(
        lambda: (lambda n: n if n["DrainStrategy"] is None else None)(client.node.get_node(node_id)),
        "the drain to complete",
    )
    assert done["SchedulingEligibility"] == "ineligible"
    assert done["Events"][-1]["Message"] == "Node drain complete"
    client.node.drain_node_with_spec(node_id, None, mark_eligible=True)
    assert client.node.get_node(node_id)["SchedulingEligibility"] == "eligible"

    with pytest.raises(errors.URLNotFoundNomadException):
        client.node.get_node("00000000-0000-0000-0000-000000000000")

    purged = client.node.purge_node(node_id)
    assert purged["Index"] > 0
    # The live client registers again on its next heartbeat.
    again = wait_for(
        lambda: [n for n in client.nodes.get_nodes() if n["ID"] == node_id],
        "the client to register again",
    )
    assert again[0]["Name"] == "pynode1"
