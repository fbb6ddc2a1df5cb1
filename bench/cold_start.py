"""Cold start of `caravan agent -dev`: process spawn to the first 200 from
/v1/status/leader, and idle RSS a few seconds later. Median of N runs."""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10


def free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


starts, rss = [], []
for _ in range(runs):
    http, rpc, serf = free_ports(3)
    with tempfile.TemporaryDirectory() as directory:
        config = os.path.join(directory, "ports.json")
        with open(config, "w") as handle:
            json.dump({"ports": {"http": http, "rpc": rpc, "serf": serf}}, handle)
        began = time.monotonic()
        process = subprocess.Popen(
            [binary, "agent", "-dev", "-config", config],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, CARAVAN_LOG="warn"),
        )
        url = f"http://127.0.0.1:{http}/v1/status/leader"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as reply:
                    if reply.status == 200:
                        break
            except Exception:
                time.sleep(0.002)
        starts.append((time.monotonic() - began) * 1000)
        time.sleep(5)
        with open(f"/proc/{process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss.append(int(line.split()[1]) / 1024)
        process.terminate()
        process.wait()
print(json.dumps({
    "cold_start_ms_median": round(statistics.median(starts), 1),
    "cold_start_ms_min": round(min(starts), 1),
    "cold_start_ms_max": round(max(starts), 1),
    "idle_rss_mb_median": round(statistics.median(rss), 1),
}))
