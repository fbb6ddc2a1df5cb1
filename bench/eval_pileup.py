#!/usr/bin/env python3
"""Eval pile-up benchmark (issue 10): JOBS jobs on NODES nodes that all
flap (report `down`, then `ready`) FLAPS times, as fast as the node RPC
takes it. Nomad writes one evaluation per job per node change
(scheduling.md §1.1, §13); Caravan coalesces them before Raft.

Measures the evaluations written (every evaluation the state holds that
did not exist before the flaps, whatever its status), the Raft entries
written, and the time from the first flap until the broker is drained
(no pending evaluation left and every job back at NODES allocations
placed). Everything runs on loopback and ends by itself (each wait is
bounded). Figures go to BENCHMARKS.md; nothing here asserts.

    bench/eval_pileup.py [JOBS] [FLAPS] [NODES] [system|service]

* `system`: system jobs, one allocation per node. Nomad's count: a node
  going down writes nothing for system allocations and each node coming
  back writes one per system job, so FLAPS x NODES x JOBS.
* `service`: service jobs of count NODES with `distinct_hosts`, so every
  node runs one allocation of every job. Nomad's count: each node going
  down writes one per job with an allocation there (the replacement then
  blocks, and the node's return unblocks it without a new evaluation),
  so FLAPS x NODES x JOBS as well.

The nodes are registered by this script through the client RPC (JSON over
HTTP on the RPC port), from the shape of one `node-sim` node, so it can
flap them; their allocations stay `pending` (no client runs them), which
is all the scheduler needs.

CARAVAN_RELEASE: a directory holding a release `caravan` (default
target/release, built if missing; see benchlib.py).
"""

import copy
import json
import sys
import threading
import time
import uuid
import subprocess

from benchlib import Server, call, commit, cpu_seconds, release_binary, wait_for

HTTP_PORT = 25646
server = None


def api(method, path, body=None, timeout=120):
    return call(server.http, method, path, body, timeout)


def rpc(path, body):
    reply = call(f"http://{server.rpc_address}", "POST", path, body, 30)
    if "Ok" not in reply:
        raise SystemExit(f"{path} refused: {reply}")
    return reply["Ok"]


def job_spec(job_id, job_type, nodes):
    group = {
        "Name": "app",
        "Count": 1 if job_type == "system" else nodes,
        "Tasks": [
            {
                "Name": "app",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": ["600"]},
                "Resources": {"CPU": 1, "MemoryMB": 10},
                "LogConfig": {"MaxFiles": 1, "MaxFileSizeMB": 1},
            }
        ],
        # Small enough that every node holds one allocation of each job.
        "EphemeralDisk": {"SizeMB": 10},
    }
    job = {
        "ID": job_id,
        "Name": job_id,
        "Type": job_type,
        "Datacenters": ["*"],
        "TaskGroups": [group],
    }
    if job_type == "service":
        job["Constraints"] = [{"Operand": "distinct_hosts", "RTarget": "true"}]
        # A lost allocation is replaced, not rescheduled with a delay.
        group["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
    return {"Job": job}


def evals_by_id():
    return {stub["ID"]: stub for stub in api("GET", "/v1/evaluations", timeout=300)}


def placed(job_id):
    summary = api("GET", f"/v1/job/{job_id}/summary")["Summary"]["app"]
    return summary["Starting"] + summary["Running"]


def raft_index():
    config = api("GET", "/v1/agent/self")
    stats = config.get("stats", {}).get("raft", {})
    return int(stats.get("last_log_index", 0) or 0)


def main():
    global server
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    flaps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    nodes = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    job_type = sys.argv[4] if len(sys.argv) > 4 else "system"
    binary = release_binary()
    server = Server(binary, "caravan-bench-pileup-", HTTP_PORT)
    stop = threading.Event()
    try:
        # One node-sim node, for the shape of a realistic node.
        subprocess.run(
            [binary, "node-sim", "-servers", server.rpc_address, "-count", "1",
             "-duration", "1s"],
            stdout=subprocess.DEVNULL, check=True,
        )
        template = api("GET", "/v1/node/" + api("GET", "/v1/nodes")[0]["ID"])
        # It stops heartbeating and goes down: keep it out of placement.
        api("POST", f"/v1/node/{template['ID']}/eligibility", {"Eligibility": "ineligible"})
        fleet = []
        for number in range(nodes):
            node = copy.deepcopy(template)
            node.update(ID=str(uuid.uuid4()), SecretID=str(uuid.uuid4()),
                        Name=f"flap-{number:03}", Status="initializing",
                        SchedulingEligibility="eligible", Events=[])
            rpc("/rpc/node/register", node)
            fleet.append(node)

        def beat(node, status):
            return rpc("/rpc/node/heartbeat",
                       {"node_id": node["ID"], "secret_id": node["SecretID"], "status": status})

        ttl = min(beat(node, "ready")["heartbeat_ttl_ms"] for node in fleet) / 1000

        def keep_alive():
            while not stop.wait(ttl / 3):
                for node in fleet:
                    if flapping.is_set():
                        break
                    beat(node, "ready")

        flapping = threading.Event()
        threading.Thread(target=keep_alive, daemon=True).start()

        for number in range(jobs):
            api("POST", "/v1/jobs", job_spec(f"pile-{number:04}", job_type, nodes))
        wanted = jobs * nodes
        wait_for("every allocation placed",
                 lambda: sum(placed(f"pile-{n:04}") for n in range(jobs)) >= wanted, 600, 0.5)
        wait_for("no pending evaluation",
                 lambda: not api("GET", "/v1/evaluations?status=pending"), 600, 0.2)
        before = evals_by_id()
        index_before = raft_index()
        cpu_before = cpu_seconds(server.pid)

        t0 = time.monotonic()
        flapping.set()
        for _ in range(flaps):
            for node in fleet:
                beat(node, "down")
            for node in fleet:
                beat(node, "ready")
        flapping.clear()
        flapped_s = time.monotonic() - t0
        wait_for("no pending evaluation",
                 lambda: not api("GET", "/v1/evaluations?status=pending"), 900, 0.05)
        drained_s = time.monotonic() - t0
        wait_for("every allocation placed again",
                 lambda: sum(placed(f"pile-{n:04}") for n in range(jobs)) >= wanted, 600, 0.5)
        settled_s = time.monotonic() - t0
        cpu_used = cpu_seconds(server.pid) - cpu_before
        index_after = raft_index()
        after = evals_by_id()
        new = [stub for eval_id, stub in after.items() if eval_id not in before]
        statuses = {}
        for stub in new:
            statuses[stub["Status"]] = statuses.get(stub["Status"], 0) + 1
        nomad = flaps * nodes * jobs
        report = {
            "commit": commit(),
            "type": job_type,
            "jobs": jobs,
            "nodes": nodes,
            "flaps": flaps,
            "node_changes": 2 * flaps * nodes,
            "flapping_s": round(flapped_s, 3),
            "evals_written": len(new),
            "evals_by_status": statuses,
            "evals_nomad_would_write": nomad,
            "raft_entries": index_after - index_before,
            "broker_drained_s": round(drained_s, 3),
            "allocations_placed_again_s": round(settled_s, 3),
            "server_cpu_s": round(cpu_used, 2),
        }
        print(json.dumps(report, indent=2))
    finally:
        stop.set()
        server.stop()


if __name__ == "__main__":
    main()
