"""Raft write throughput beside the disk's fsync rate, with the group
commit's own figures: entries per fsync, how busy the log writer was,
entries per applied batch, and the server's CPU time per write.

Usage: python3 bench/write_profile.py BIN DATA_DIR [runs] [connections]
Needs wrk. Starts `BIN agent -server -bootstrap-expect 1` on loopback with
a data dir under DATA_DIR (the same disk the fsync probe measures).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

BIN, DATA = sys.argv[1], sys.argv[2]
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
CONNS = int(sys.argv[4]) if len(sys.argv) > 4 else 32
HERE = os.path.dirname(os.path.abspath(__file__))
URL = "http://127.0.0.1:4646"
TICKS = os.sysconf("SC_CLK_TCK")


def agent_self():
    with urllib.request.urlopen(URL + "/v1/agent/self", timeout=5) as response:
        stats = json.load(response)["stats"]
    raft, state = stats["raft"], stats["state"]
    return {
        "batches": int(raft["log_write_batches"]),
        "unsynced": int(raft.get("log_write_unsynced_batches", 0)),
        "entries": int(raft["log_write_entries"]),
        "busy_us": int(raft["log_write_busy_us"]),
        "max": int(raft["log_write_max_entries"]),
        "publishes": int(state["publishes"]),
        "index": int(state["latest_index"]),
    }


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def fsync_rate():
    os.makedirs(DATA, exist_ok=True)
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "fsync_rate.py"), DATA, "5"],
        check=True, capture_output=True, text=True,
    )
    return int(out.stdout.strip())


def wrk():
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNS}", "-d10s", "--latency",
         "-s", os.path.join(HERE, "put_scheduler.lua"), URL],
        check=True, capture_output=True, text=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    # The percentiles under "Latency Distribution", one per line.
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, p50, p99, int(non2xx.group(1)) if non2xx else 0


def main():
    fsyncs = fsync_rate()
    print(f"disk: {fsyncs} fsyncs/s (one writer, 128-byte writes)")
    data_dir = os.path.join(DATA, "server-data")
    shutil.rmtree(data_dir, ignore_errors=True)
    server = subprocess.Popen(
        [BIN, "agent", "-server", "-bootstrap-expect", "1", "-data-dir", data_dir,
         "-bind", "127.0.0.1", "-log-level", "WARN"],
    )
    try:
        for _ in range(100):
            try:
                if agent_self()["index"] > 0:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        for run in range(RUNS):
            before, cpu_before = agent_self(), cpu_seconds(server.pid)
            started = time.monotonic()
            rate, p50, p99, failed = wrk()
            wall = time.monotonic() - started
            after, cpu_after = agent_self(), cpu_seconds(server.pid)
            entries = after["entries"] - before["entries"]
            batches = max(after["batches"] - before["batches"], 1)
            fsyncs_made = max(batches - (after["unsynced"] - before["unsynced"]), 1)
            publishes = max(after["publishes"] - before["publishes"], 1)
            busy = (after["busy_us"] - before["busy_us"]) / 1e6
            cpu = cpu_after - cpu_before
            print(
                f"run {run + 1}: {rate:,.0f} writes/s ({rate / fsyncs:.1f}x fsyncs/s), "
                f"p50 {p50}, p99 {p99}, non-2xx {failed}; "
                f"{entries / fsyncs_made:.1f} entries/fsync (max {after['max']}/batch), "
                f"{fsyncs_made / wall:,.0f} fsyncs/s + {(batches - fsyncs_made) / wall:,.0f} "
                f"unsynced batches/s, writer busy {100 * busy / wall:.0f}%, "
                f"{entries / publishes:.1f} entries/applied batch, "
                f"server CPU {cpu / wall:.2f} cores = {1e6 * cpu / max(entries, 1):.0f} us/write"
            )
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


main()
