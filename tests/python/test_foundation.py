"""python-nomad from PyPI against a real Caravan `agent -dev`."""

import nomad
import requests


def client(agent):
    return nomad.Nomad(address=agent.address, timeout=10)


def test_get_agent(agent):
    body = client(agent).agent.get_agent()
    assert body["config"]["NodeName"] == "pynomad1"
    assert body["member"]["Name"] == "pynomad1.global"
    assert body["stats"]["raft"]["state"] == "Leader"
    assert body["stats"]["nomad"]["leader"] == "true"


def test_get_servers(agent):
    assert client(agent).agent.get_servers() == [agent.rpc_address]


def test_get_members(agent):
    members = client(agent).agent.get_members()
    assert [member["Name"] for member in members["Members"]] == ["pynomad1.global"]


def test_get_leader(agent):
    assert client(agent).status.leader.get_leader() == agent.rpc_address


def test_get_peers(agent):
    assert client(agent).status.peers.get_peers() == [agent.rpc_address]


def test_get_regions(agent):
    regions = client(agent).regions
    assert regions.get_regions() == ["global"]
    assert "global" in regions


def test_operator_get_configuration(agent):
    configuration = client(agent).operator.get_configuration()
    servers = configuration["Servers"]
    assert len(servers) == 1
    assert servers[0]["Address"] == agent.rpc_address
    assert servers[0]["Leader"] is True
    assert servers[0]["Voter"] is True
    stats = requests.get(agent.address + "/v1/agent/self", timeout=10).json()["stats"]
    # The configuration's Raft index, as the agent's own Raft figures say.
    assert isinstance(configuration["Index"], int)
    assert configuration["Index"] == int(stats["raft"]["latest_configuration_index"])


def test_address_with_trailing_slash(agent):
    # python-nomad then requests //v1/...; the agent must still route it.
    slashed = nomad.Nomad(address=agent.address + "/", timeout=10)
    assert slashed.status.leader.get_leader() == agent.rpc_address


def test_autopilot_configuration_over_plain_http(agent):
    url = agent.address + "/v1/operator/autopilot/configuration"
    current = requests.get(url, timeout=10).json()
    assert current["LastContactThreshold"] == "200ms"
    update = dict(current, LastContactThreshold="300ms", MaxTrailingLogs=300)
    reply = requests.put(url, json=update, timeout=10)
    assert reply.status_code == 200
    assert reply.json() is True
    stored = requests.get(url, timeout=10).json()
    assert stored["LastContactThreshold"] == "300ms"
    assert stored["MaxTrailingLogs"] == 300
    stale = requests.put(url + "?cas=1", json=update, timeout=10)
    assert stale.json() is False


def test_scheduler_configuration_over_plain_http(agent):
    url = agent.address + "/v1/operator/scheduler/configuration"
    current = requests.get(url, timeout=10)
    assert current.headers["X-Nomad-KnownLeader"] == "true"
    config = current.json()["SchedulerConfig"]
    config["SchedulerAlgorithm"] = "spread"
    reply = requests.post(url, json=config, timeout=10)
    assert reply.status_code == 200
    assert reply.json()["Updated"] is True
    assert int(reply.headers["X-Nomad-Index"]) == reply.json()["Index"]
    stored = requests.get(url, timeout=10).json()["SchedulerConfig"]
    assert stored["SchedulerAlgorithm"] == "spread"
    bad = requests.put(url, json={"SchedulerAlgorithm": "random"}, timeout=10)
    assert bad.status_code == 400
    assert bad.text == "invalid scheduler algorithm: random"
