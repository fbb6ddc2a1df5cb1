#!/usr/bin/env python3
"""Driver benchmarks (issue 12), on one release `agent -dev` on loopback
and the machine's Docker Engine with the local busybox image
(`scripts/build-test-image.sh` builds `caravan-busybox:test`; nothing is
pulled):

1. 100 raw_exec tasks (one job, Count 100) from register to all running;
   then the agent's RSS and CPU over 10 s while they run, and the RSS of
   the 100 executors that parent them.
2. The same 50 containers three ways, in the same run on the same engine:
   - the engine's floor: 50 x `docker run -d` of the image, 8 at a time;
   - Docker Swarm mode: `docker swarm init`, then `docker service create
     --replicas 50`, until the service shows 50/50 running;
   - Caravan: a docker job with Count 50, until the API shows 50 running
     allocations (each container started by the engine).
   The orchestrators' memory: Caravan's agent RSS; Swarm's is the growth
   of dockerd's RSS from before `swarm init` to 50/50 (its manager and
   dispatcher live inside dockerd).

Every wait is bounded; containers, the swarm and the agent are removed
at the end. Figures go to BENCHMARKS.md; nothing here asserts.

    bench/drivers.py [ROUNDS]     # default 2
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import call, commit, cpu_seconds, quietly, release_binary, rss_mb, wait_for

HTTP_PORT = 27746
IMAGE = "caravan-busybox:test"
CONTAINERS = 50
RAW_TASKS = 100


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True).stdout


def pid_of(name):
    out = sh("pidof", name, check=False).split()
    return int(out[0]) if out else None


def agent(binary):
    data = tempfile.mkdtemp(prefix="caravan-bench-drivers-")
    config = os.path.join(data, "ports.json")
    with open(config, "w") as out:
        json.dump({"ports": {"http": HTTP_PORT, "rpc": HTTP_PORT + 1, "serf": HTTP_PORT + 2}}, out)
    process = subprocess.Popen([binary, "agent", "-dev", "-bind", "127.0.0.1", "-config", config,
                                "-log-level", "WARN"])
    base = f"http://127.0.0.1:{HTTP_PORT}"
    wait_for("the dev node with docker", lambda: quietly(lambda: any(
        n["Status"] == "ready" and n["Drivers"].get("docker", {}).get("Healthy")
        for n in call(base, "GET", "/v1/nodes", timeout=2))), 60, 0.1)
    return process, base, data


def running(base, job_id):
    return sum(1 for a in call(base, "GET", f"/v1/job/{job_id}/allocations")
               if a["ClientStatus"] == "running")


def stop_job(base, job_id):
    call(base, "DELETE", f"/v1/job/{job_id}?purge=true")


def run_job(base, job_id, driver, count, config):
    t0 = time.monotonic()
    call(base, "POST", "/v1/jobs", {"Job": {
        "ID": job_id, "Type": "service",
        "TaskGroups": [{"Name": "g", "Count": count, "Tasks": [{
            "Name": "t", "Driver": driver, "KillTimeout": 1_000_000_000,
            "Resources": {"CPU": 20, "MemoryMB": 16},
            "Config": config}]}]}})
    wait_for(f"{count} running", lambda: quietly(lambda: running(base, job_id) == count),
             300, 0.02)
    return time.monotonic() - t0


def agent_use(process, seconds=10):
    c0 = cpu_seconds(process.pid)
    time.sleep(seconds)
    return rss_mb(process.pid), (cpu_seconds(process.pid) - c0) / seconds * 100


def executors_rss():
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                argv = cmd.read().split(b"\0")
            if len(argv) > 1 and argv[0].endswith(b"caravan") and argv[1] == b"executor":
                total += rss_mb(int(pid))
        except OSError:
            pass
    return total


def wait_no_containers(label):
    wait_for("containers removed", lambda: not sh(
        "docker", "ps", "-aq", "--filter", f"label={label}").strip(), 120, 0.2)


def floor():
    names = [f"bench-floor-{i}" for i in range(CONTAINERS)]
    t0 = time.monotonic()
    proc = subprocess.run(
        ["xargs", "-P", "8", "-I{}", "docker", "run", "-d", "--name", "{}", "--label",
         "caravan-bench=floor", IMAGE, "sleep", "3600"],
        input="\n".join(names), capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"docker run failed: {proc.stderr[:500]}")
    sh("docker", "rm", "-f", *names)
    return elapsed


def swarm():
    before = rss_mb(pid_of("dockerd"))
    sh("docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        t0 = time.monotonic()
        sh("docker", "service", "create", "--detach", "--name", "bench-swarm",
           "--replicas", str(CONTAINERS), "--no-resolve-image", IMAGE, "sleep", "3600")
        wait_for("50/50 swarm replicas", lambda: sh(
            "docker", "service", "ls", "--filter", "name=bench-swarm",
            "--format", "{{.Replicas}}").strip() == f"{CONTAINERS}/{CONTAINERS}", 300, 0.05)
        elapsed = time.monotonic() - t0
        after = rss_mb(pid_of("dockerd"))
        sh("docker", "service", "rm", "bench-swarm")
        wait_no_containers("com.docker.swarm.service.name=bench-swarm")
    finally:
        sh("docker", "swarm", "leave", "--force", check=False)
    return elapsed, after - before, after


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    binary = release_binary()
    if not sh("docker", "image", "ls", "-q", IMAGE).strip():
        raise SystemExit(f"missing {IMAGE}: run scripts/build-test-image.sh")
    print(f"commit {commit()}, {os.cpu_count()} CPUs")
    for n in range(rounds):
        process, base, data = agent(binary)
        try:
            raw = run_job(base, f"raw-{n}", "raw_exec", RAW_TASKS,
                          {"command": "/bin/sleep", "args": ["3600"]})
            rss, cpu = agent_use(process)
            print(f"round {n}: raw_exec {RAW_TASKS} running in {raw:.2f} s; agent RSS "
                  f"{rss:.1f} MB, CPU {cpu:.1f} % while they run; executors "
                  f"{executors_rss():.0f} MB in all")
            stop_job(base, f"raw-{n}")
            wait_for("raw tasks gone", lambda: quietly(
                lambda: running(base, f"raw-{n}") == 0), 120, 0.1)

            floor_s = floor()
            swarm_s, swarm_delta, dockerd_rss = swarm()
            idle_rss = rss_mb(process.pid)
            caravan_s = run_job(base, f"docker-{n}", "docker", CONTAINERS,
                                {"image": IMAGE, "command": "sleep", "args": ["3600"]})
            rss, cpu = agent_use(process)
            print(f"round {n}: {CONTAINERS} containers: floor {floor_s:.2f} s, swarm "
                  f"{swarm_s:.2f} s ({swarm_s / floor_s:.2f}x floor; dockerd grew "
                  f"{swarm_delta:.1f} MB to {dockerd_rss:.1f} MB), caravan {caravan_s:.2f} s "
                  f"({caravan_s / floor_s:.2f}x floor; agent RSS grew {rss - idle_rss:.1f} MB to "
                  f"{rss:.1f} MB, CPU {cpu:.1f} % while they run)")
            stop_job(base, f"docker-{n}")
            wait_no_containers("com.hashicorp.nomad.task_name=t")
        finally:
            process.terminate()
            process.wait(timeout=60)
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
