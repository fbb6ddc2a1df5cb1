#!/usr/bin/env python3
"""Drain and preemption benchmarks (issue 11), against one release server
and simulated nodes (`caravan node-sim -run-allocs`: they report their
allocations running, service ones healthy at once, and stopped ones
complete). Everything runs on loopback and every wait is bounded. Figures
go to BENCHMARKS.md; nothing here asserts.

    bench/drain.py one [ALLOCS] [MAX_PARALLEL]     # default 1000, 50
    bench/drain.py many [NODES] [ALLOCS]           # default 100, 10000
    bench/drain.py preempt [NODES] [PER_NODE]      # default 5000, 4

* `one`: ALLOCS service allocations on one node (datacenter dc1), 20
  empty nodes in dc2; the dc1 node is drained with `MaxParallel`
  MAX_PARALLEL. Time from the drain request until the node's drain is
  complete (every old allocation terminal on its client), and the Raft
  entries written meanwhile.
* `many`: NODES nodes in dc1 holding ALLOCS allocations (100 jobs), as
  many empty nodes in dc2; all dc1 nodes drained at once (`MaxParallel`
  25). Time until every drain is complete, leader CPU seconds, Raft
  entries.
* `preempt`: NODES nodes each filled with PER_NODE low-priority service
  allocations (95 % of the node's CPU), then a priority-80 system job
  asking a third of a node's CPU. Time from register until the system
  job's allocations are all placed, and victims per node.

CARAVAN_RELEASE: a directory holding a release `caravan` (default
target/release, built if missing; see benchlib.py).
"""

import subprocess
import sys
import time

from benchlib import Server, call, commit, cpu_seconds, release_binary, wait_for

HTTP_PORT = 26646
server = None


def api(method, path, body=None, timeout=120):
    return call(server.http, method, path, body, timeout)


def raft_index():
    stats = api("GET", "/v1/agent/self").get("stats", {}).get("raft", {})
    return int(stats.get("last_log_index", 0) or 0)


def sim(binary, count, datacenter):
    return subprocess.Popen(
        [binary, "node-sim", "-servers", server.rpc_address, "-count", str(count),
         "-duration", "1800s", "-concurrency", "64", "-run-allocs", "-datacenter", datacenter],
        stdout=subprocess.DEVNULL,
    )


def ready(datacenter=None):
    nodes = api("GET", "/v1/nodes")
    return [n for n in nodes if n["Status"] == "ready"
            and (datacenter is None or n["Datacenter"] == datacenter)]


def job(job_id, count, job_type="service", priority=50, cpu=2, max_parallel=None):
    group = {
        "Name": "app",
        "Count": count,
        "EphemeralDisk": {"SizeMB": 10},
        "Tasks": [{
            "Name": "app",
            "Driver": "raw_exec",
            "Config": {"command": "/bin/sleep", "args": ["600"]},
            "Resources": {"CPU": cpu, "MemoryMB": 10},
            "LogConfig": {"MaxFiles": 1, "MaxFileSizeMB": 1},
        }],
    }
    if max_parallel is not None:
        group["Migrate"] = {"MaxParallel": max_parallel, "MinHealthyTime": 0}
    return {"Job": {"ID": job_id, "Name": job_id, "Type": job_type, "Priority": priority,
                    "Datacenters": ["*"], "TaskGroups": [group]}}


def running(job_id):
    summary = api("GET", f"/v1/job/{job_id}/summary")["Summary"]["app"]
    return summary["Running"]


def drain_all(node_ids, limit_s):
    """Drains every node at once; returns seconds until all are complete."""
    t0 = time.monotonic()
    for node_id in node_ids:
        api("PUT", f"/v1/node/{node_id}/drain", {"DrainSpec": {"Deadline": 0}})
    pending = set(node_ids)

    def done():
        for node in api("GET", "/v1/nodes"):
            if node["ID"] in pending and not node["Drain"]:
                pending.discard(node["ID"])
        return not pending

    wait_for("every drain to complete", done, limit_s, 0.05)
    return time.monotonic() - t0


def bench_drain(binary, mode):
    if mode == "one":
        allocs = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
        max_parallel = int(sys.argv[3]) if len(sys.argv) > 3 else 50
        drained_nodes, spare_nodes, jobs = 1, 20, 1
    else:
        drained_nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 100
        allocs = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
        max_parallel, spare_nodes, jobs = 25, drained_nodes, 100
    sims = [sim(binary, drained_nodes, "dc1")]
    try:
        wait_for("dc1 nodes", lambda: len(ready("dc1")) >= drained_nodes, 120, 0.2)
        per_job = allocs // jobs
        for n in range(jobs):
            api("POST", "/v1/jobs", job(f"drain-{n}", per_job, max_parallel=max_parallel))
        wait_for("every allocation running",
                 lambda: all(running(f"drain-{n}") >= per_job for n in range(jobs)), 300, 0.2)
        sims.append(sim(binary, spare_nodes, "dc2"))
        wait_for("dc2 nodes", lambda: len(ready("dc2")) >= spare_nodes, 120, 0.2)
        time.sleep(1)
        index_before = raft_index()
        cpu_before = cpu_seconds(server.pid)
        seconds = drain_all([n["ID"] for n in ready("dc1")], 900)
        cpu = cpu_seconds(server.pid) - cpu_before
        entries = raft_index() - index_before
        moved = sum(running(f"drain-{n}") for n in range(jobs))
        print({"mode": mode, "commit": commit(), "drained_nodes": drained_nodes,
               "allocs": allocs, "max_parallel": max_parallel, "seconds_to_empty": round(seconds, 2),
               "raft_entries": entries, "leader_cpu_s": round(cpu, 2),
               "running_after": moved})
    finally:
        for process in sims:
            process.kill()
            process.wait()


def bench_preempt(binary):
    nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    per_node = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    process = sim(binary, nodes, "dc1")
    try:
        wait_for(f"{nodes} nodes", lambda: len(ready()) >= nodes, 600, 0.5)
        sample = api("GET", f"/v1/node/{ready()[0]['ID']}")
        total_cpu = sample["NodeResources"]["Cpu"]["CpuShares"]
        cpu = int(total_cpu * 0.95 / per_node)
        api("PUT", "/v1/operator/scheduler/configuration",
            {"PreemptionConfig": {"SystemSchedulerEnabled": True}})
        api("POST", "/v1/jobs", job("filler", nodes * per_node, priority=20, cpu=cpu))
        wait_for("the nodes full", lambda: running("filler") >= nodes * per_node, 900, 0.5)
        time.sleep(1)
        index_before = raft_index()
        cpu_before = cpu_seconds(server.pid)
        t0 = time.monotonic()
        answer = api("POST", "/v1/jobs",
                     job("agent", 1, job_type="system", priority=80, cpu=total_cpu // 3))

        def placed():
            evaluation = api("GET", f"/v1/evaluation/{answer['EvalID']}")
            return evaluation["Status"] == "complete" and evaluation

        evaluation = wait_for("the system job placed", placed, 900, 0.1)
        seconds = time.monotonic() - t0
        cpu_used = cpu_seconds(server.pid) - cpu_before
        entries = raft_index() - index_before
        agents = api("GET", "/v1/job/agent/allocations")
        fillers = api("GET", "/v1/job/filler/allocations")
        evicted = sum(1 for a in fillers if a["DesiredStatus"] == "evict")
        print({"mode": "preempt", "commit": commit(), "nodes": nodes, "per_node": per_node,
               "node_cpu": total_cpu, "system_cpu": total_cpu // 3,
               "seconds_to_placed": round(seconds, 2), "leader_cpu_s": round(cpu_used, 2),
               "raft_entries": entries, "system_allocs": len(agents),
               "victims": evicted, "victims_per_node": round(evicted / max(1, len(agents)), 2),
               "failed_tg": bool(evaluation.get("FailedTGAllocs"))})
    finally:
        process.kill()
        process.wait()


def main():
    global server
    mode = sys.argv[1] if len(sys.argv) > 1 else "one"
    binary = release_binary()
    server = Server(binary, "caravan-bench-drain-", HTTP_PORT, "max_heartbeats_per_second = 200")
    try:
        if mode == "preempt":
            bench_preempt(binary)
        else:
            bench_drain(binary, mode)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
