#!/usr/bin/env python3
"""Plan applier under contention (issue 10): WORKERS scheduling workers
(`num_schedulers`) planning JOBS service jobs of COUNT allocations at once
on NODES simulated nodes (`caravan node-sim -run-allocs`), sized so the
jobs take FILL of the cluster's CPU. Binpacking sends every worker to the
same fullest nodes, so plans made on the same snapshot collide in the
plan applier, which refuses the nodes that no longer fit and makes the
worker plan again.

Reports the placements committed per second (from the first register to
every allocation written), and the applier's counters from
`/v1/agent/self` (`stats.scheduler`): plans applied, plans partly refused
(conflicts), evaluations processed. Then checks that no node is
overcommitted (the sum of its live allocations' CPU and memory within its
resources), which is the applier's job. Everything runs on loopback and
ends by itself; nothing here asserts but the overcommit check.

    bench/plan_contention.py [NODES] [JOBS] [COUNT] [WORKERS] [FILL]

CARAVAN_RELEASE: a directory holding a release `caravan` (default
target/release, built if missing; see benchlib.py).
"""

import concurrent.futures
import json
import subprocess
import sys
import time

from benchlib import Server, call, commit, quietly, release_binary, wait_for

HTTP_PORT = 26646
server = None


def api(method, path, body=None, timeout=120):
    return call(server.http, method, path, body, timeout)


def job_spec(job_id, count, cpu):
    return {
        "Job": {
            "ID": job_id,
            "Name": job_id,
            "Type": "service",
            "Datacenters": ["*"],
            "TaskGroups": [
                {
                    "Name": "app",
                    "Count": count,
                    "Tasks": [
                        {
                            "Name": "app",
                            "Driver": "raw_exec",
                            "Config": {"command": "/bin/sleep", "args": ["600"]},
                            "Resources": {"CPU": cpu, "MemoryMB": 64},
                        }
                    ],
                }
            ],
        }
    }


def placed(job_id):
    summary = api("GET", f"/v1/job/{job_id}/summary")["Summary"]["app"]
    return summary["Starting"] + summary["Running"]


def main():
    global server
    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    fill = float(sys.argv[5]) if len(sys.argv) > 5 else 0.9
    binary = release_binary()
    server = Server(binary, "caravan-bench-contention-", HTTP_PORT,
                    f"num_schedulers = {workers}\nmax_heartbeats_per_second = 200")
    sim = None
    try:
        sim = subprocess.Popen(
            [binary, "node-sim", "-servers", server.rpc_address, "-count", str(nodes),
             "-duration", "900s", "-concurrency", "64", "-run-allocs"],
            stdout=subprocess.DEVNULL,
        )
        listed = wait_for(
            f"{nodes} ready nodes",
            lambda: quietly(lambda: (lambda l: l if sum(n["Status"] == "ready" for n in l) >= nodes
                                    else None)(api("GET", "/v1/nodes"))),
            300, 0.5)
        node = api("GET", "/v1/node/" + listed[0]["ID"])
        node_cpu = node["NodeResources"]["Cpu"]["CpuShares"]
        # CPU per allocation so that JOBS x COUNT allocations take FILL of
        # the cluster's CPU.
        cpu = max(1, int(nodes * node_cpu * fill / (jobs * count)))
        before = api("GET", "/v1/agent/self")["stats"]["scheduler"]

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda n: api("POST", "/v1/jobs", job_spec(f"c-{n:03}", count, cpu)),
                          range(jobs)))
        registered_s = time.monotonic() - t0
        wanted = jobs * count

        def all_placed():
            pending = api("GET", "/v1/evaluations?status=pending")
            return not pending and sum(placed(f"c-{n:03}") for n in range(jobs)) >= wanted

        wait_for("every allocation placed", all_placed, 600, 0.05)
        placed_s = time.monotonic() - t0
        after = api("GET", "/v1/agent/self")["stats"]["scheduler"]
        delta = {key: int(after[key]) - int(before.get(key, 0)) for key in after}

        # The applier's promise: no node holds more than it has.
        over = 0
        used = {}
        for alloc in api("GET", "/v1/allocations?resources=true", timeout=300):
            if alloc["DesiredStatus"] != "run" or alloc["ClientStatus"] not in ("pending", "running"):
                continue
            res = alloc["AllocatedResources"]["Tasks"]["app"]
            cpu_used, mem_used = used.get(alloc["NodeID"], (0, 0))
            used[alloc["NodeID"]] = (cpu_used + res["Cpu"]["CpuShares"],
                                     mem_used + res["Memory"]["MemoryMB"])
        for node_id, (cpu_used, mem_used) in used.items():
            full = api("GET", f"/v1/node/{node_id}")
            reserved = full.get("ReservedResources") or {}
            cap_cpu = full["NodeResources"]["Cpu"]["CpuShares"] - (
                (reserved.get("Cpu") or {}).get("CpuShares", 0))
            cap_mem = full["NodeResources"]["Memory"]["MemoryMB"] - (
                (reserved.get("Memory") or {}).get("MemoryMB", 0))
            if cpu_used > cap_cpu or mem_used > cap_mem:
                over += 1

        report = {
            "commit": commit(),
            "nodes": nodes,
            "jobs": jobs,
            "count": count,
            "workers": workers,
            "cpu_per_alloc": cpu,
            "fill": fill,
            "registered_s": round(registered_s, 3),
            "placed_s": round(placed_s, 3),
            "placements_per_s": round(wanted / placed_s),
            "scheduler": delta,
            "nodes_used": len(used),
            "nodes_overcommitted": over,
        }
        print(json.dumps(report, indent=2))
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(timeout=30)
        server.stop()


if __name__ == "__main__":
    main()
