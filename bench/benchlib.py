"""What the jobs benchmarks share: finding the release binary, starting one
release server on its own ports with a real data dir, bounded waits, and
reading a process's CPU time and RSS. Nothing here asserts."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def release_binary():
    """The release `caravan` (CARAVAN_RELEASE, default target/release),
    built if missing."""
    release = os.environ.get("CARAVAN_RELEASE", os.path.join(ROOT, "target/release"))
    binary = os.path.join(release, "caravan")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release", "-p", "caravan"], cwd=ROOT, check=True)
    return binary


def commit():
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()


def call(base, method, path, body=None, timeout=120):
    """JSON in, JSON out; an HTTP error stops the benchmark with its text."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw = response.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {path}: {error.code} {error.read()[:500]!r}")


def quietly(check):
    """`check()`, or None if it raised (a server not answering yet)."""
    try:
        return check()
    except Exception:
        return None


def wait_for(what, check, limit_s, interval=0.05):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"gave up waiting for {what} after {limit_s}s")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """One release server (`-server -bootstrap-expect 1`) on HTTP_PORT and
    the two ports after it, with `server_hcl` inside its `server` block and
    per-client connection limits lifted (simulated nodes all come from
    127.0.0.1). Stop it with `stop()`."""

    def __init__(self, binary, prefix, http_port, server_hcl=""):
        self.http = f"http://127.0.0.1:{http_port}"
        self.rpc_address = f"127.0.0.1:{http_port + 1}"
        self.data = tempfile.mkdtemp(prefix=prefix)
        config = os.path.join(self.data, "server.hcl")
        with open(config, "w") as out:
            out.write(
                f"""
server {{
{server_hcl}
}}
ports {{
  http = {http_port}
  rpc  = {http_port + 1}
  serf = {http_port + 2}
}}
limits {{
  http_max_conns_per_client = 0
  rpc_max_conns_per_client  = 0
}}
"""
            )
        self.process = subprocess.Popen(
            [binary, "agent", "-server", "-bootstrap-expect", "1", "-bind", "127.0.0.1",
             "-data-dir", os.path.join(self.data, "server"), "-config", config,
             "-log-level", "WARN"],
        )
        wait_for("a leader",
                 lambda: quietly(lambda: call(self.http, "GET", "/v1/status/leader", timeout=2)),
                 30, 0.1)

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.data, ignore_errors=True)
