"""A three-server cluster with mutual TLS on HTTP and RPC, secured the way
Nomad's docs say (`tls ca create`, `tls cert create -server|-client|-cli`),
with a client-only agent, used from python-nomad over HTTPS."""

import json
import os
import signal
import subprocess
import tempfile
import time

import nomad
import pytest
import requests

from conftest import BINARY, free_ports


def run(args, cwd):
    result = subprocess.run(
        [BINARY, *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


class TlsAgent:
    def __init__(self, name, certs, role, ports, config, args=(), ca=None, tls=None):
        self.dir = tempfile.TemporaryDirectory(prefix="caravan-tls-")
        self.name = name
        self.http_port, self.rpc_port, self.serf_port = ports
        prefix = os.path.join(certs, f"global-{role}-nomad")
        config = {
            "bind_addr": "127.0.0.1",
            "name": name,
            "data_dir": os.path.join(self.dir.name, "data"),
            "ports": {
                "http": self.http_port,
                "rpc": self.rpc_port,
                "serf": self.serf_port,
            },
            "tls": {
                "http": True,
                "rpc": True,
                "ca_file": ca or os.path.join(certs, "nomad-agent-ca.pem"),
                "cert_file": prefix + ".pem",
                "key_file": prefix + "-key.pem",
                "verify_server_hostname": True,
                "verify_https_client": True,
                **(tls or {}),
            },
            **config,
        }
        self.config_path = os.path.join(self.dir.name, "agent.json")
        with open(self.config_path, "w") as handle:
            json.dump(config, handle)
        self.log_path = os.path.join(self.dir.name, "agent.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [BINARY, "agent", *args, "-config", self.config_path],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def read_log(self):
        with open(self.log_path) as handle:
            return handle.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        self.dir.cleanup()


@pytest.fixture(scope="module")
def certs():
    directory = tempfile.TemporaryDirectory(prefix="caravan-certs-")
    out = run(["tls", "ca", "create"], directory.name)
    assert "nomad-agent-ca.pem" in out
    for role in ["-server", "-client", "-cli"]:
        run(["tls", "cert", "create", role], directory.name)
    yield directory.name
    directory.cleanup()


@pytest.fixture(scope="module")
def cluster(certs):
    # Ports are chosen first so every server can name the others.
    port_sets = [free_ports(3) for _ in range(3)]
    join = [f"127.0.0.1:{ports[2]}" for ports in port_sets]
    servers = [
        TlsAgent(
            f"tls-server-{index}",
            certs,
            "server",
            ports,
            {
                "server": {
                    "enabled": True,
                    "bootstrap_expect": 3,
                    "server_join": {"retry_join": join},
                }
            },
        )
        for index, ports in enumerate(port_sets)
    ]
    client = TlsAgent(
        "tls-client",
        certs,
        "client",
        free_ports(3),
        {
            "client": {
                "enabled": True,
                "servers": [f"127.0.0.1:{ports[1]}" for ports in port_sets],
            }
        },
    )
    yield servers, client
    client.stop()
    for agent in servers:
        agent.stop()


def cli_client(certs, port):
    return nomad.Nomad(
        host="127.0.0.1",
        port=port,
        secure=True,
        verify=os.path.join(certs, "nomad-agent-ca.pem"),
        cert=(
            os.path.join(certs, "global-cli-nomad.pem"),
            os.path.join(certs, "global-cli-nomad-key.pem"),
        ),
        timeout=10,
    )


def wait_for(check, what, logs):
    deadline = time.monotonic() + 60
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last = error
        time.sleep(0.25)
    raise AssertionError(f"{what} did not happen ({last!r}):\n" + logs())


def test_python_nomad_over_https_sees_three_servers_and_the_client_node(certs, cluster):
    servers, client = cluster
    logs = lambda: "\n".join(agent.read_log()[-3000:] for agent in [*servers, client])
    api = cli_client(certs, servers[0].http_port)
    leader = wait_for(lambda: api.status.leader.get_leader(), "a leader", logs)
    assert leader.startswith("127.0.0.1:")
    peers = wait_for(
        lambda: len(api.status.peers.get_peers()) == 3 and api.status.peers.get_peers(),
        "three peers",
        logs,
    )
    assert len(peers) == 3
    # The client-only agent registered over mutual TLS on the RPC port.
    nodes = wait_for(
        lambda: [
            n
            for n in api.nodes.get_nodes()
            if n["Name"] == "tls-client" and n["Status"] == "ready"
        ],
        "the client node to be ready",
        logs,
    )
    assert len(nodes) == 1
    # Every server answers, forwarding to the leader over TLS where needed.
    for server in servers:
        other = cli_client(certs, server.http_port)
        assert other.status.leader.get_leader() == leader
        config = other.operator.get_configuration()
        assert len(config["Servers"]) == 3


def test_plain_http_and_missing_client_certificates_are_refused(certs, cluster):
    servers, _ = cluster
    ca = os.path.join(certs, "nomad-agent-ca.pem")
    url = f"https://127.0.0.1:{servers[0].http_port}/v1/status/leader"
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"http://127.0.0.1:{servers[0].http_port}/v1/status/leader", timeout=5)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, verify=ca, timeout=5)


def test_a_client_certificate_cannot_call_server_only_rpcs(certs, cluster):
    servers, _ = cluster
    ca = os.path.join(certs, "nomad-agent-ca.pem")
    pair = lambda role: (
        os.path.join(certs, f"global-{role}-nomad.pem"),
        os.path.join(certs, f"global-{role}-nomad-key.pem"),
    )
    url = f"https://127.0.0.1:{servers[0].rpc_port}/rpc/raft/status"
    refused = requests.get(url, verify=ca, cert=pair("client"), timeout=5)
    assert refused.status_code == 403, refused.text
    allowed = requests.get(url, verify=ca, cert=pair("server"), timeout=5)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["Ok"]["initialized"] is True


def test_sighup_reloads_the_certificate(certs):
    import shutil
    import ssl

    directory = tempfile.TemporaryDirectory(prefix="caravan-reload-")
    live = directory.name
    for name in ["global-server-nomad.pem", "global-server-nomad-key.pem"]:
        shutil.copy(os.path.join(certs, name), live)
    # The CA stays where it is; only the agent's own pair is swapped.
    agent = TlsAgent(
        "tls-reload",
        live,
        "server",
        free_ports(3),
        {},
        args=["-dev"],
        ca=os.path.join(certs, "nomad-agent-ca.pem"),
        tls={"verify_https_client": False},
    )
    try:
        served = lambda: ssl.get_server_certificate(("127.0.0.1", agent.http_port))
        first = wait_for(served, "the HTTPS listener", agent.read_log)
        # A new server certificate from the same CA, written over the old.
        fresh = tempfile.TemporaryDirectory(prefix="caravan-fresh-")
        for name in ["nomad-agent-ca.pem", "nomad-agent-ca-key.pem"]:
            shutil.copy(os.path.join(certs, name), fresh.name)
        run(["tls", "cert", "create", "-server"], fresh.name)
        for name in ["global-server-nomad.pem", "global-server-nomad-key.pem"]:
            shutil.copy(os.path.join(fresh.name, name), os.path.join(live, name))
        assert served() == first, "the certificate changed before SIGHUP"
        agent.process.send_signal(signal.SIGHUP)
        second = wait_for(
            lambda: served() != first and served(), "the reloaded certificate", agent.read_log
        )
        assert second == ssl.DER_cert_to_PEM_cert(
            ssl.PEM_cert_to_DER_cert(open(os.path.join(live, "global-server-nomad.pem")).read())
        )
        assert agent.process.poll() is None, "SIGHUP stopped the agent"
        fresh.cleanup()
    finally:
        agent.stop()
        directory.cleanup()
