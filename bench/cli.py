#!/usr/bin/env python3
"""CLI benchmarks (issue 13): how long a `caravan` command takes from spawn
to exit against one release `agent -dev` on loopback, and the command's
peak RSS, for the commands people type most:

- `version` (no API call: process start and exit),
- `node status`, `job status` (a list of 100 jobs), `job status <id>`,
  `alloc status <prefix>` (prefix resolution, then the allocation),
- `job run -detach` (parse the HCL file locally, register),
- `job run` (register, follow the evaluation and the allocation until its
  task runs: the round trip a user waits for).

Each is run ROUNDS times (default 30); the median and the 90th percentile
are printed. Every wait is bounded; the agent is stopped at the end.
Figures go to BENCHMARKS.md; nothing here asserts.

    bench/cli.py [ROUNDS]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import call, commit, quietly, release_binary, wait_for

HTTP_PORT = 27846
JOBS = 100

JOB = """job "%s" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["600"]
      }
      resources {
        cpu    = 10
        memory = 16
      }
    }
  }
}
"""


def timed(binary, env, args):
    """Seconds from spawn to exit."""
    start = time.perf_counter()
    result = subprocess.run([binary, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"caravan {' '.join(args)} exited {result.returncode}: "
                         f"{result.stderr.decode()[:400]}")
    return elapsed


def peak_rss_mb(binary, env, args):
    """The command's own peak RSS, by GNU time (a forked Python child's
    ru_maxrss would count the interpreter's pages)."""
    if not shutil.which("/usr/bin/time"):
        return float("nan")
    result = subprocess.run(["/usr/bin/time", "-f", "%M", binary, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def report(name, samples, rss):
    times = sorted(s * 1000 for s in samples)
    p90 = times[int(len(times) * 0.9) - 1]
    print(f"{name:<28} median {statistics.median(times):7.1f} ms   p90 {p90:7.1f} ms   "
          f"peak RSS {rss:5.1f} MB")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    binary = release_binary()
    data = tempfile.mkdtemp(prefix="caravan-bench-cli-")
    config = os.path.join(data, "ports.json")
    with open(config, "w") as out:
        json.dump({"ports": {"http": HTTP_PORT, "rpc": HTTP_PORT + 1, "serf": HTTP_PORT + 2}},
                  out)
    agent = subprocess.Popen([binary, "agent", "-dev", "-bind", "127.0.0.1", "-config", config,
                              "-log-level", "WARN"])
    base = f"http://127.0.0.1:{HTTP_PORT}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env["NOMAD_ADDR"] = base
    try:
        wait_for("the dev node", lambda: quietly(lambda: any(
            n["Status"] == "ready" for n in call(base, "GET", "/v1/nodes", timeout=2))), 60, 0.1)
        files = []
        for index in range(JOBS):
            path = os.path.join(data, f"job{index}.nomad.hcl")
            with open(path, "w") as out:
                out.write(JOB % f"bench-{index:03}")
            files.append(path)
        detach = [timed(binary, env, ["job", "run", "-detach", path]) for path in files]
        allocs = call(base, "GET", "/v1/allocations")
        alloc_prefix = allocs[0]["ID"][:8]
        print(f"commit {commit()}, {os.cpu_count()} CPUs, {rounds} rounds, {JOBS} jobs")
        for name, args in [
            ("version", ["version"]),
            ("node status", ["node", "status"]),
            ("job status (100 jobs)", ["job", "status"]),
            ("job status <id>", ["job", "status", "bench-000"]),
            ("alloc status <prefix>", ["alloc", "status", alloc_prefix]),
        ]:
            report(name, [timed(binary, env, args) for _ in range(rounds)],
                   peak_rss_mb(binary, env, args))
        report("job run -detach", detach,
               peak_rss_mb(binary, env, ["job", "run", "-detach", files[0]]))
        runs = []
        for index in range(rounds):
            path = os.path.join(data, f"run{index}.nomad.hcl")
            with open(path, "w") as out:
                out.write(JOB % f"run-{index:03}")
            runs.append(timed(binary, env, ["job", "run", path]))
        path = os.path.join(data, "rss.nomad.hcl")
        with open(path, "w") as out:
            out.write(JOB % "rss")
        report("job run (until running)", runs, peak_rss_mb(binary, env, ["job", "run", path]))
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
