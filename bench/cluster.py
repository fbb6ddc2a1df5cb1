"""Cluster benchmarks (issue 3), on one machine with release binaries:

  failover     leader SIGKILL -> first acknowledged write on the new leader
               (median of N trials; default timings)
  catch-up     a new server joining a cluster whose log holds 100,000
               entries: time until it has applied everything

  throughput   writes from 32 connections to the leader, then to a follower

Usage: python3 bench/cluster.py target/release/caravan [trials]
       python3 bench/cluster.py target/release/caravan 0 throughput
Everything listens on 127.0.0.1 and stops by itself."""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

BINARY = sys.argv[1]
TRIALS = int(sys.argv[2]) if len(sys.argv) > 2 else 5


def free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def request(port, path, method="GET", body=None, timeout=10):
    data = body.encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as reply:
        return reply.status, reply.read()


class Server:
    def __init__(self, root, name, serf_peers, expect, ports):
        self.name = name
        self.http, self.rpc, self.serf = ports
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        config = {
            "bind_addr": "127.0.0.1",
            "ports": {"http": self.http, "rpc": self.rpc, "serf": self.serf},
            "server": {"enabled": True, "bootstrap_expect": expect,
                       "server_join": {"retry_join": serf_peers}},
        }
        self.config = os.path.join(self.dir, "config.json")
        with open(self.config, "w") as handle:
            json.dump(config, handle)
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [BINARY, "agent", "-node", self.name, "-data-dir", os.path.join(self.dir, "data"),
             "-config", self.config, "-log-level", "WARN"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()

    def leader(self):
        try:
            return json.loads(request(self.http, "/v1/status/leader?stale", timeout=2)[1])
        except Exception:
            return ""


def cluster(root, count, expect):
    ports = [free_ports(3) for _ in range(count)]
    peers = [f"127.0.0.1:{p[2]}" for p in ports]
    return [Server(root, f"s{i}", peers, expect, ports[i]) for i in range(count)]


def wait_for_voters(servers, count, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            leader = wait_for_leader(servers)
            config = json.loads(request(leader.http, "/v1/operator/raft/configuration")[1])
            if sum(1 for s in config["Servers"] if s["Voter"]) == count:
                return leader
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("cluster never had all voters")


def wait_for_leader(servers, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {s.leader() for s in servers if s.process.poll() is None}
        if len(seen) == 1 and "" not in seen:
            leader = seen.pop()
            return next(s for s in servers if f"127.0.0.1:{s.rpc}" == leader)
        time.sleep(0.05)
    raise RuntimeError("no leader")


def failover():
    samples = []
    with tempfile.TemporaryDirectory() as root:
        servers = cluster(root, 3, 3)
        try:
            for trial in range(TRIALS):
                leader = wait_for_voters(servers, 3)
                followers = [s for s in servers if s is not leader]
                body = json.dumps({"SchedulerAlgorithm": "spread" if trial % 2 else "binpack"})
                acked = threading.Event()
                stop = threading.Event()
                result = {}

                def writer(server):
                    while not stop.is_set():
                        started = time.monotonic()
                        try:
                            status, _ = request(server.http, "/v1/operator/scheduler/configuration",
                                                "PUT", body, timeout=10)
                            # Only a write sent after the kill proves a new leader.
                            if (status == 200 and started > result.get("killed", float("inf"))
                                    and not acked.is_set()):
                                result["acked"] = time.monotonic()
                                acked.set()
                        except Exception:
                            time.sleep(0.005)

                threads = [threading.Thread(target=writer, args=(f,)) for f in followers]
                for t in threads:
                    t.start()
                time.sleep(0.5)
                result["killed"] = time.monotonic()
                leader.kill()
                acked.wait(timeout=30)
                stop.set()
                for t in threads:
                    t.join()
                samples.append((result["acked"] - result["killed"]) * 1000)
                leader.start()
        finally:
            for s in servers:
                s.stop()
    return samples


def catch_up(entries=100_000):
    with tempfile.TemporaryDirectory() as root:
        servers = cluster(root, 1, 1)
        try:
            leader = wait_for_leader(servers)
            # Fill the log: every entry registers a node, so the state (and
            # the snapshot a new server installs) holds 100,000 nodes.
            done = [0]
            lock = threading.Lock()

            def writer():
                while True:
                    with lock:
                        if done[0] >= entries:
                            return
                        done[0] += 1
                        n = done[0]
                    node = {"ID": str(uuid.UUID(int=n)), "SecretID": f"s{n}", "Name": f"n{n}",
                            "Datacenter": "dc1", "HTTPAddr": "127.0.0.9:4646",
                            "Attributes": {"kernel.name": "linux"}}
                    req = urllib.request.Request(f"http://127.0.0.1:{leader.rpc}/rpc/node/register",
                                                 data=json.dumps(node).encode(), method="POST",
                                                 headers={"Content-Type": "application/json"})
                    urllib.request.urlopen(req, timeout=30).read()

            threads = [threading.Thread(target=writer) for _ in range(32)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self_stats = json.loads(request(leader.http, "/v1/agent/self")[1])
            target = int(self_stats["stats"]["raft"]["last_log_index"])
            # A new, empty server joins and catches up.
            ports = free_ports(3)
            # bootstrap_expect 0: it joins the existing cluster, it does not
            # start one.
            joiner = Server(root, "joiner", [f"127.0.0.1:{leader.serf}"], 0, ports)
            servers.append(joiner)
            started = time.monotonic()
            while True:
                try:
                    stats = json.loads(request(joiner.http, "/v1/agent/self", timeout=2)[1])
                    applied = int(stats["stats"]["raft"]["applied_index"])
                    if applied >= target:
                        break
                except Exception:
                    pass
                time.sleep(0.01)
            nodes = len(json.loads(request(joiner.http, "/v1/nodes?stale")[1]))
            return target, (time.monotonic() - started) * 1000, nodes
        finally:
            for s in servers:
                s.stop()


def throughput():
    """Scheduler-config PUTs from 32 connections (wrk, 10 s) sent to the
    leader, then to a follower (which forwards each one to the leader)."""
    lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "put_scheduler.lua")
    results = {}
    with tempfile.TemporaryDirectory() as root:
        servers = cluster(root, 3, 3)
        try:
            leader = wait_for_voters(servers, 3)
            follower = next(s for s in servers if s is not leader)
            for label, server in (("leader", leader), ("follower", follower)):
                out = subprocess.run(
                    ["wrk", "-t2", "-c32", "-d10s", "--latency", "-s", lua,
                     f"http://127.0.0.1:{server.http}"],
                    capture_output=True, text=True, check=True).stdout
                figures = {}
                for line in out.splitlines():
                    parts = line.split()
                    if line.startswith("Requests/sec:"):
                        figures["writes_per_s"] = float(parts[1])
                    elif parts[:1] in (["50%"], ["99%"]):
                        figures["p" + parts[0].rstrip("%")] = parts[1]
                    elif "Non-2xx" in line:
                        figures["non_2xx"] = int(parts[-1])
                results[label] = figures
        finally:
            for s in servers:
                s.stop()
    return results


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[3] == "throughput":
        print(json.dumps(throughput()))
        sys.exit(0)
    samples = failover()
    print(json.dumps({"failover_ms": [round(s) for s in samples],
                      "failover_median_ms": round(statistics.median(samples))}))
    target, elapsed, nodes = catch_up()
    print(json.dumps({"catch_up_log_index": target, "catch_up_ms": round(elapsed),
                      "nodes_on_new_server": nodes}))
