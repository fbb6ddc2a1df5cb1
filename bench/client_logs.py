#!/usr/bin/env python3
"""Log streaming benchmark (issue 12): a raw_exec task writes SIZE_MB of
output as fast as it can (`head -c` of /dev/zero through `tr`, lines of
64 bytes); the benchmark follows its stdout through
`/v1/client/fs/logs/:alloc?follow=true` (plain, then framed) from the
moment the task starts until the follow ends (the task dead and its
output read) and reports MB/s and the bytes received against the bytes
written. A follower slower than the writer loses what log rotation
deletes before it is read (10 files of 10 MB by default), which the
"received" column shows. One release `agent -dev` on loopback; every wait
is bounded. Figures go to BENCHMARKS.md; nothing here asserts.

    bench/client_logs.py [SIZE_MB]     # default 500
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import call, commit, quietly, release_binary, wait_for

HTTP_PORT = 27646


def agent(binary):
    data = tempfile.mkdtemp(prefix="caravan-bench-logs-")
    config = os.path.join(data, "ports.json")
    with open(config, "w") as out:
        json.dump({"ports": {"http": HTTP_PORT, "rpc": HTTP_PORT + 1, "serf": HTTP_PORT + 2}}, out)
    process = subprocess.Popen([binary, "agent", "-dev", "-bind", "127.0.0.1", "-config", config,
                                "-log-level", "WARN"])
    base = f"http://127.0.0.1:{HTTP_PORT}"
    wait_for("the dev node", lambda: quietly(
        lambda: any(n["Status"] == "ready" for n in call(base, "GET", "/v1/nodes", timeout=2))),
        30, 0.1)
    return process, base, data


def run(base, size_mb, plain, n):
    job_id = f"writer-{n}"
    script = f"head -c {size_mb * 1024 * 1024} /dev/zero | tr '\\0' 'x' | fold -w 63"
    call(base, "POST", "/v1/jobs", {"Job": {
        "ID": job_id, "Type": "batch",
        "TaskGroups": [{"Name": "g", "Tasks": [{
            "Name": "t", "Driver": "raw_exec",
            "Config": {"command": "/bin/sh", "args": ["-c", script]}}]}]}})
    alloc = wait_for("the task started", lambda: quietly(lambda: [
        a for a in call(base, "GET", f"/v1/job/{job_id}/allocations")
        if a["ClientStatus"] in ("running", "complete")]), 60, 0.01)[0]
    url = (f"{base}/v1/client/fs/logs/{alloc['ID']}?task=t&type=stdout&follow=true"
           f"&plain={'true' if plain else 'false'}")
    t0 = time.monotonic()
    received = 0
    with urllib.request.urlopen(url, timeout=600) as response:
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            received += len(chunk)
    seconds = time.monotonic() - t0
    return {"plain": plain, "size_mb": size_mb, "seconds": round(seconds, 2),
            "received_mb": round(received / 1024 / 1024, 1),
            "mb_per_s": round(received / 1024 / 1024 / seconds, 1)}


def main():
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    binary = release_binary()
    process, base, data = agent(binary)
    try:
        results = [run(base, size_mb, plain, n) for n, plain in enumerate([True, False, True, False])]
        print({"commit": commit(), "runs": results})
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
