#!/usr/bin/env python3
"""Server garbage collection benchmark: one server, NODES simulated clients
(`caravan node-sim -run-allocs -batch-runtime 1s`), JOBS batch jobs of
COUNT allocations each, run to completion; then one forced collection
(`PUT /v1/system/gc`, which answers once everything is written).

Measures the collection's wall time, the Raft entries it took (the index
it answered with, minus the index before), the server's CPU and RSS
before and after, and checks that nothing finished is left. Everything
runs on loopback and ends by itself (each wait is bounded). Figures go to
BENCHMARKS.md; nothing here asserts.

    bench/server_gc.py [NODES] [JOBS] [COUNT]

CARAVAN_RELEASE: a directory holding a release `caravan` (default
target/release, built if missing; see benchlib.py).
"""

import json
import subprocess
import sys
import time
import urllib.request

from benchlib import Server, commit, cpu_seconds, release_binary, rss_mb, wait_for

HTTP_PORT = 25646
server = None


def request(method, path, body=None, timeout=300):
    """The decoded answer and the X-Nomad-Index header."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.http + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as response:
        raw = response.read()
        index = int(response.headers.get("X-Nomad-Index") or 0)
        return (json.loads(raw) if raw else None), index


def job_spec(job_id, count):
    task = {
        "Name": "app",
        "Driver": "raw_exec",
        "Config": {"command": "/bin/true"},
        "Resources": {"CPU": 20, "MemoryMB": 32},
    }
    group = {"Name": "app", "Count": count, "Tasks": [task]}
    return {"Job": {"ID": job_id, "Type": "batch", "Datacenters": ["*"], "TaskGroups": [group]}}


def finished(job_id, count):
    summary, _ = request("GET", f"/v1/job/{job_id}/summary")
    return summary["Summary"]["app"]["Complete"] >= count


def main():
    global server
    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    binary = release_binary()
    server = Server(binary, "caravan-bench-gc-", HTTP_PORT, "max_heartbeats_per_second = 200")
    sim = None
    try:
        sim = subprocess.Popen(
            [binary, "node-sim", "-servers", server.rpc_address, "-count", str(nodes),
             "-duration", "900s", "-concurrency", "64", "-run-allocs",
             "-batch-runtime", "1s"],
            stdout=subprocess.DEVNULL,
        )
        wait_for(f"{nodes} ready nodes", lambda: _ready_nodes() >= nodes, 300, 0.5)
        ids = [f"batch-{n}" for n in range(jobs)]
        for job_id in ids:
            request("POST", "/v1/jobs", job_spec(job_id, count))
        for job_id in ids:
            wait_for(f"{job_id} complete", lambda: finished(job_id, count), 600, 0.2)
        wait_for("every job dead",
                 lambda: all(stub["Status"] == "dead" for stub in request("GET", "/v1/jobs")[0]),
                 120, 0.2)
        allocs_before = len(request("GET", "/v1/allocations")[0])
        evals_before = len(request("GET", "/v1/evaluations")[0])
        time.sleep(2)
        _, index_before = request("GET", "/v1/jobs")
        rss_before = rss_mb(server.pid)
        cpu_before = cpu_seconds(server.pid)
        t0 = time.monotonic()
        _, index_after = request("PUT", "/v1/system/gc")
        gc_s = time.monotonic() - t0
        cpu_used = cpu_seconds(server.pid) - cpu_before
        time.sleep(2)
        rss_after = rss_mb(server.pid)
        report = {
            "commit": commit(),
            "nodes": nodes,
            "jobs": jobs,
            "allocations_per_job": count,
            "allocations_before": allocs_before,
            "evaluations_before": evals_before,
            "gc_s": round(gc_s, 3),
            "gc_objects_per_s": round((allocs_before + evals_before + jobs) / gc_s),
            "raft_entries": index_after - index_before,
            "server_cpu_s": round(cpu_used, 2),
            "server_rss_mb_before": round(rss_before, 1),
            "server_rss_mb_after": round(rss_after, 1),
            "jobs_left": len(request("GET", "/v1/jobs")[0]),
            "allocations_left": len(request("GET", "/v1/allocations")[0]),
            "evaluations_left": len(request("GET", "/v1/evaluations")[0]),
        }
        print(json.dumps(report, indent=2))
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(timeout=30)
        server.stop()


def _ready_nodes():
    try:
        listed, _ = request("GET", "/v1/nodes", timeout=30)
        return sum(1 for node in listed if node["Status"] == "ready")
    except Exception:
        return 0


if __name__ == "__main__":
    main()
