"""Leader failover with 10,000 heartbeating nodes (issue 9).

Three release servers on 127.0.0.1 and `caravan node-sim` registering
NODES simulated nodes through all three (each node fails over through its
own server list, as a real client does) and heartbeating them. Once every
node is registered and the cluster is steady, the leader is killed with
SIGKILL. Measured:

  - how long until a surviving server is the new, ready leader;
  - how many nodes the new leader marks down (target 0): counted on the
    other survivor with ?stale, so the counting costs the leader nothing;
  - the new leader's CPU, sampled every second from /proc/<pid>/stat,
    while every node heartbeats it for the first time.

Usage: python3 bench/failover_nodes.py target/release/caravan
         [--nodes 10000] [--rate 500] [--failover-ttl 15s] [--observe 75]
         [--server-binary BIN]

`--rate` is `max_heartbeats_per_second` (500 gives 10,000 nodes TTLs of
20-40 s, so the run stays short); `--failover-ttl` is
`failover_heartbeat_ttl` (Nomad's default is 5m; a short one checks that
the new leader still waits out the TTLs the old one handed out).
`--server-binary` runs the servers from another build (node-sim always
comes from the first binary), to compare server versions.

Bounded: at most 100,000 nodes, every process is stopped at the end, and
the run takes about the registration time plus 20 s plus --observe."""

import argparse
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

HZ = os.sysconf("SC_CLK_TCK")


def free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def get(port, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
        return json.loads(reply.read())


class Server:
    def __init__(self, binary, root, name, ports, peers, rate, failover_ttl):
        self.name = name
        self.http, self.rpc, self.serf = ports
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        config = {
            "bind_addr": "127.0.0.1",
            "ports": {"http": self.http, "rpc": self.rpc, "serf": self.serf},
            "server": {"enabled": True, "bootstrap_expect": 3,
                       "server_join": {"retry_join": peers},
                       "max_heartbeats_per_second": rate,
                       "failover_heartbeat_ttl": failover_ttl},
            # Every simulated node comes from one address.
            "limits": {"http_max_conns_per_client": 0, "rpc_max_conns_per_client": 0},
        }
        path = os.path.join(self.dir, "config.json")
        with open(path, "w") as handle:
            json.dump(config, handle)
        self.process = subprocess.Popen(
            [binary, "agent", "-node", name, "-data-dir", os.path.join(self.dir, "data"),
             "-config", path, "-log-level", "WARN"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))

    def alive(self):
        return self.process.poll() is None

    def leader(self):
        try:
            return get(self.http, "/v1/status/leader?stale", timeout=2)
        except Exception:
            return ""

    def cpu_ticks(self):
        with open(f"/proc/{self.process.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def stop(self, sig=signal.SIGTERM):
        if self.alive():
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def leader_of(servers, timeout=60):
    """The server every live server names as leader, once it serves reads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {s.leader() for s in servers if s.alive()}
        if len(seen) == 1 and "" not in seen:
            address = seen.pop()
            leader = next((s for s in servers if f"127.0.0.1:{s.rpc}" == address), None)
            if leader is not None and leader.alive():
                try:
                    get(leader.http, "/v1/nodes?per_page=1", timeout=2)
                    return leader
                except Exception:
                    pass
        time.sleep(0.05)
    raise RuntimeError("no leader")


def statuses(server):
    nodes = get(server.http, "/v1/nodes?stale", timeout=30)
    counts = {}
    for node in nodes:
        counts[node["Status"]] = counts.get(node["Status"], 0) + 1
    return counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--server-binary")
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--failover-ttl", default="15s")
    parser.add_argument("--observe", type=int, default=75)
    args = parser.parse_args()
    if not 1 <= args.nodes <= 100_000 or not 1 <= args.observe <= 600:
        raise SystemExit("--nodes must be 1..100000 and --observe 1..600")
    server_binary = args.server_binary or args.binary

    with tempfile.TemporaryDirectory() as root:
        ports = [free_ports(3) for _ in range(3)]
        peers = [f"127.0.0.1:{p[2]}" for p in ports]
        servers = [Server(server_binary, root, f"s{i}", ports[i], peers, args.rate,
                          args.failover_ttl) for i in range(3)]
        sim = None
        try:
            leader = leader_of(servers, timeout=120)
            rpc = ",".join(f"127.0.0.1:{s.rpc}" for s in servers)
            # Long enough for registration, the steady phase and the
            # observation; stopped at the end in any case.
            duration = 600
            sim_out = open(os.path.join(root, "sim.json"), "w")
            sim = subprocess.Popen(
                [args.binary, "node-sim", "-servers", rpc, "-count", str(args.nodes),
                 "-duration", f"{duration}s", "-concurrency", "64"],
                stdout=sim_out, stderr=subprocess.STDOUT)
            started = time.monotonic()
            while True:
                counts = statuses(leader)
                if counts.get("ready", 0) >= args.nodes:
                    break
                if time.monotonic() - started > 300 or sim.poll() is not None:
                    raise RuntimeError(f"registration did not finish: {counts}")
                time.sleep(1)
            registered = time.monotonic() - started
            time.sleep(20)  # steady: every node has its TTL and heartbeats
            before = statuses(leader)
            print(f"{args.nodes} nodes registered in {registered:.1f} s; before the kill: {before}")

            killed = time.monotonic()
            leader.stop(signal.SIGKILL)
            survivors = [s for s in servers if s.alive()]
            new_leader = leader_of(survivors)
            took_over = time.monotonic() - killed
            other = next(s for s in survivors if s is not new_leader)
            print(f"leader {leader.name} killed; {new_leader.name} ready leader after "
                  f"{took_over * 1000:.0f} ms")

            samples = []
            down_seen = 0
            ticks = new_leader.cpu_ticks()
            last = time.monotonic()
            while time.monotonic() - killed < args.observe:
                time.sleep(1)
                now_ticks, now = new_leader.cpu_ticks(), time.monotonic()
                samples.append(100.0 * (now_ticks - ticks) / HZ / (now - last))
                ticks, last = now_ticks, now
                if len(samples) % 5 == 0:
                    down_seen = max(down_seen, statuses(other).get("down", 0))
            after = statuses(other)
            down_seen = max(down_seen, after.get("down", 0))
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=30)
            print(f"after {args.observe} s: {after}; most nodes down at once: {down_seen}")
            print("new leader CPU, % of one core per second after the takeover: "
                  + " ".join(f"{s:.0f}" for s in samples))
            busy = sorted(samples)
            print(f"  peak {busy[-1]:.0f} %, median {busy[len(busy) // 2]:.0f} %, "
                  f"mean {sum(busy) / len(busy):.0f} %")
        finally:
            if sim is not None and sim.poll() is None:
                sim.kill()
                sim.wait()
            for s in servers:
                s.stop()


if __name__ == "__main__":
    main()
