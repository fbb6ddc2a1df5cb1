#!/usr/bin/env python3
"""Jobs pipeline benchmark (issue 10): one server, NODES simulated clients
(`caravan node-sim -run-allocs`), one job of COUNT allocations.

Measures, from the register request:
  * committed: every allocation written through Raft (the job summary's
    Starting + Running + Complete reaches COUNT);
  * running: every allocation reported running by its simulated client;
then the placement quality of a sample (nodes evaluated per placement, the
chosen node's binpack score), the server's RSS, and `GET /v1/allocations`
at that size. Everything runs on loopback and ends by itself (each wait is
bounded). Figures go to BENCHMARKS.md; nothing here asserts.

    bench/jobs_pipeline.py [NODES] [COUNT] [service|batch]

CARAVAN_RELEASE: a directory holding a release `caravan` (default
target/release, built if missing; see benchlib.py).
"""

import json
import statistics
import subprocess
import sys
import time
import urllib.request

from benchlib import Server, commit, cpu_seconds, release_binary, rss_mb, wait_for

HTTP_PORT = 24646
server = None


def request(method, path, body=None, timeout=120):
    """The decoded answer and its size in bytes."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.http + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as response:
        raw = response.read()
        return json.loads(raw) if raw else None, len(raw)


def job_spec(job_id, job_type, count):
    return {
        "Job": {
            "ID": job_id,
            "Name": job_id,
            "Type": job_type,
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
                            "Resources": {"CPU": 100, "MemoryMB": 256},
                        }
                    ],
                }
            ],
        }
    }


def main():
    global server
    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    job_type = sys.argv[3] if len(sys.argv) > 3 else "service"
    binary = release_binary()
    # Every simulated node holds one blocking RPC open from 127.0.0.1.
    server = Server(binary, "caravan-bench-jobs-", HTTP_PORT, "max_heartbeats_per_second = 200")
    sim = None
    try:
        sim = subprocess.Popen(
            [binary, "node-sim", "-servers", server.rpc_address, "-count", str(nodes),
             "-duration", "900s", "-concurrency", "64", "-run-allocs"],
            stdout=subprocess.DEVNULL,
        )
        started = time.monotonic()
        wait_for(f"{nodes} ready nodes", lambda: _ready_nodes() >= nodes, 300, 0.5)
        register_s = time.monotonic() - started
        time.sleep(2)
        rss_idle = rss_mb(server.pid)
        cpu_before = cpu_seconds(server.pid)

        job_id = f"bench-{job_type}"
        t0 = time.monotonic()
        request("POST", "/v1/jobs", job_spec(job_id, job_type, count))
        committed_at = running_at = None
        deadline = t0 + 900
        while time.monotonic() < deadline and running_at is None:
            summary, _ = request("GET", f"/v1/job/{job_id}/summary")
            group = summary["Summary"]["app"]
            placed = group["Starting"] + group["Running"] + group["Complete"]
            now = time.monotonic()
            if committed_at is None and placed >= count:
                committed_at = now
            if group["Running"] + group["Complete"] >= count:
                running_at = now
                break
            time.sleep(0.02)
        if running_at is None:
            raise SystemExit("allocations never all reported running")
        cpu_used = cpu_seconds(server.pid) - cpu_before
        rss_loaded = rss_mb(server.pid)

        evals, _ = request("GET", f"/v1/job/{job_id}/evaluations")
        evals_by_cause = {}
        for evaluation in evals:
            cause = f"{evaluation['TriggeredBy']}/{evaluation['Status']}"
            evals_by_cause[cause] = evals_by_cause.get(cause, 0) + 1
        nodes_down = sum(1 for node in request("GET", "/v1/nodes")[0] if node["Status"] != "ready")
        scheduler = request("GET", "/v1/agent/self")[0]["stats"]["scheduler"]
        allocs, _ = request("GET", f"/v1/job/{job_id}/allocations")
        sample = allocs[:: max(1, len(allocs) // 200)][:200]
        evaluated, binpack = [], []
        for stub in sample:
            alloc, _ = request("GET", f"/v1/allocation/{stub['ID']}")
            metrics = alloc.get("Metrics") or {}
            evaluated.append(metrics.get("NodesEvaluated", 0))
            for meta in metrics.get("ScoreMetaData") or []:
                if meta.get("NodeID") == alloc["NodeID"]:
                    binpack.append(meta["Scores"].get("binpack", 0.0))
        nodes_used = len({stub["NodeID"] for stub in allocs})

        list_times, list_bytes = [], 0
        for _ in range(5):
            t = time.monotonic()
            _, list_bytes = request("GET", "/v1/allocations", timeout=300)
            list_times.append(time.monotonic() - t)
        rss_after_list = rss_mb(server.pid)

        def quantiles(values):
            if not values:
                return None
            values = sorted(values)
            pick = lambda q: round(values[min(len(values) - 1, int(q * len(values)))], 3)
            return [pick(0.1), pick(0.5), pick(0.9)]

        report = {
            "commit": commit(),
            "nodes": nodes,
            "count": count,
            "type": job_type,
            "nodes_registered_s": round(register_s, 2),
            "committed_s": round(committed_at - t0, 3),
            "committed_per_s": round(count / (committed_at - t0)),
            "running_s": round(running_at - t0, 3),
            "running_per_s": round(count / (running_at - t0)),
            "server_cpu_s_until_running": round(cpu_used, 2),
            "evaluations": len(evals),
            "evaluations_by_trigger_and_status": evals_by_cause,
            "nodes_not_ready_at_the_end": nodes_down,
            "scheduler": scheduler,
            "nodes_used": nodes_used,
            "nodes_evaluated_per_placement_p10_p50_p90": quantiles(evaluated),
            "chosen_binpack_p10_p50_p90": quantiles(binpack),
            "server_rss_mb_idle_with_nodes": round(rss_idle, 1),
            "server_rss_mb_with_allocs": round(rss_loaded, 1),
            "server_rss_mb_after_list": round(rss_after_list, 1),
            "get_allocations_ms_median": round(statistics.median(list_times) * 1000, 1),
            "get_allocations_bytes": list_bytes,
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
