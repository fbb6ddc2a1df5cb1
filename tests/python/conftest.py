"""Starts real Caravan agents for the python-nomad compatibility tests."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("CARAVAN_BIN", os.path.join(ROOT, "target", "debug", "caravan"))


PORT_MARKERS = os.path.join(tempfile.gettempdir(), "caravan-test-ports")


def _reserve(port):
    """Claims `port` for this test run with a marker file, so two tests
    (in any process) never hand out the same port between the moment it is
    found free and the moment an agent binds it. Markers older than ten
    minutes are stale and taken over."""
    os.makedirs(PORT_MARKERS, exist_ok=True)
    marker = os.path.join(PORT_MARKERS, str(port))
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        try:
            if time.time() - os.path.getmtime(marker) > 600:
                os.utime(marker)
                return True
        except OSError:
            pass
        return False


def free_ports(count):
    ports = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in ports and _reserve(port):
            ports.append(port)
    return ports


class Agent:
    def __init__(self, args):
        self.dir = tempfile.TemporaryDirectory(prefix="caravan-pytest-")
        self.http_port, self.rpc_port, self.serf_port = free_ports(3)
        config = os.path.join(self.dir.name, "ports.json")
        with open(config, "w") as handle:
            json.dump(
                {
                    "bind_addr": "127.0.0.1",
                    "ports": {
                        "http": self.http_port,
                        "rpc": self.rpc_port,
                        "serf": self.serf_port,
                    },
                },
                handle,
            )
        self.log = open(os.path.join(self.dir.name, "agent.log"), "w")
        self.process = subprocess.Popen(
            [BINARY, "agent", *args, "-config", config],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.address = f"http://127.0.0.1:{self.http_port}"
        self.rpc_address = f"127.0.0.1:{self.rpc_port}"
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                reply = requests.get(self.address + "/v1/status/leader", timeout=2)
                if reply.status_code == 200 and len(reply.json()) > 0:
                    return
            except (requests.ConnectionError, ValueError):
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("agent did not become ready:\n" + self.read_log())

    def read_log(self):
        with open(os.path.join(self.dir.name, "agent.log")) as handle:
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
def agent():
    started = Agent(["-dev", "-node", "pynomad1"])
    yield started
    started.stop()


def wait_for(predicate, what, timeout=30):
    """`predicate()`'s first true value, asked every 0.1 s (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ready_dev_agent():
    """A `-dev` agent whose own node is ready: work is placed there, and a
    job registered before the node is ready is blocked first (its
    evaluations then differ), so the tests wait as a user would."""
    import nomad

    started = Agent(["-dev"])
    client = nomad.Nomad(address=started.address, timeout=10)
    wait_for(lambda: any(n["Status"] == "ready" for n in client.nodes.get_nodes()),
             "the dev node to be ready")
    return started
