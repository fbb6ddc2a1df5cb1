"""python-nomad's `client` calls (files, logs, allocation stats, signal,
restart, collection, node stats) against a real Caravan dev agent running
the same task twice: with raw_exec, and with docker in the local busybox
image (`scripts/build-test-image.sh`; skipped without an engine, a failure
under CI)."""

import base64
import json
import os
import subprocess
import threading
import time

import nomad
import pytest

from conftest import ready_dev_agent, wait_for

SCRIPT = (
    "echo hello-stdout; echo hello-stderr >&2; "
    "printf 'line one\\nline two\\n' > $NOMAD_ALLOC_DIR/data/notes.txt; "
    "trap 'echo got-usr1 >> $NOMAD_ALLOC_DIR/data/signals.txt' USR1; "
    "while true; do sleep 1; done"
)


TASK_IMAGE = "caravan-busybox:test"


def task_config(driver, command, args):
    """The same command under either driver (busybox's in the image)."""
    if driver == "raw_exec":
        return {"command": command, "args": args}
    return {"image": TASK_IMAGE, "command": os.path.basename(command), "args": args}


def docker_ready():
    try:
        subprocess.run(["docker", "image", "inspect", TASK_IMAGE], check=True,
                       capture_output=True, timeout=30)
        return True
    except (OSError, subprocess.SubprocessError):
        if os.environ.get("CI") == "true":
            raise AssertionError(f"CI=true but no Docker engine with {TASK_IMAGE}")
        return False


@pytest.fixture(scope="module", params=["raw_exec", "docker"])
def running(request):
    driver = request.param
    if driver == "docker" and not docker_ready():
        pytest.skip(f"SKIPPED: no Docker engine with {TASK_IMAGE} here (it runs under CI)")
    agent = ready_dev_agent()
    client = nomad.Nomad(address=agent.address, timeout=10)
    job = {
        "ID": "files",
        "TaskGroups": [{
            "Name": "g",
            "Tasks": [{
                "Name": "app",
                "Driver": driver,
                "Config": task_config(driver, "/bin/sh", ["-c", SCRIPT]),
            }],
        }],
    }
    client.jobs.register_job({"Job": job})
    alloc = wait_for(lambda: [a for a in client.job.get_allocations("files")
                              if a["ClientStatus"] == "running"], "the task running")[0]
    wait_for(lambda: "notes.txt" in [f["Name"] for f in
                                     client.client.ls.list_files(alloc["ID"], "alloc/data")],
             "the task's file")
    yield client, alloc["ID"], driver
    client.job.deregister_job("files")
    agent.stop()


def test_files(running):
    client, alloc_id, _ = running
    names = {f["Name"]: f for f in client.client.ls.list_files(alloc_id, "/")}
    assert {"alloc", "app"} <= set(names) and names["alloc"]["IsDir"]
    stat = client.client.stat.stat_file(alloc_id, "alloc/data/notes.txt")
    assert stat["Name"] == "notes.txt" and stat["Size"] == len("line one\nline two\n")
    assert not stat["IsDir"]
    assert client.client.cat.read_file(alloc_id, "alloc/data/notes.txt") == "line one\nline two\n"
    assert client.client.read_at.read_file_offset(alloc_id, 5, 3, "alloc/data/notes.txt") == "one"


def test_a_path_outside_the_allocation_is_refused(running):
    client, alloc_id, _ = running
    for path in ["../../../../etc/passwd", "/../../etc/passwd", "alloc/../../.."]:
        with pytest.raises(nomad.api.exceptions.BaseNomadException) as refused:
            client.client.cat.read_file(alloc_id, path)
        assert "root:" not in str(refused.value.nomad_resp.text)


def test_logs_framed_and_plain(running):
    client, alloc_id, _ = running
    plain = client.client.stream_logs.stream(alloc_id, "app", "stdout", plain=True)
    assert plain == "hello-stdout\n"
    framed = client.client.stream_logs.stream(alloc_id, "app", "stderr")
    decoder, text, at = json.JSONDecoder(), "", 0
    while at < len(framed):
        frame, at = decoder.raw_decode(framed, at)
        if frame.get("Data"):
            text += base64.b64decode(frame["Data"]).decode()
            assert frame["File"] == "alloc/logs/app.stderr.0"
    assert text == "hello-stderr\n"


def test_stats_signal_and_restart(running):
    client, alloc_id, _ = running
    stats = client.client.allocation.read_allocation_stats(alloc_id)
    assert stats["Tasks"]["app"]["ResourceUsage"]["MemoryStats"]["RSS"] > 0
    node = client.client.stats.read_stats()
    assert node["Memory"]["Total"] > 0 and node["CPU"]

    client.client.allocation.signal_allocation(alloc_id, "SIGUSR1", "app")

    def signalled():
        try:
            return "got-usr1" in client.client.cat.read_file(alloc_id, "alloc/data/signals.txt")
        except nomad.api.exceptions.URLNotFoundNomadException:
            return False  # the trap runs once the task's `sleep 1` returns
    wait_for(signalled, "the task to see the signal")
    with pytest.raises(nomad.api.exceptions.BaseNomadException) as refused:
        client.client.allocation.signal_allocation(alloc_id, "SIGBOGUS", "app")
    assert "invalid signal" in refused.value.nomad_resp.text

    before = client.allocation.get_allocation(alloc_id)["TaskStates"]["app"]["Restarts"]
    client.client.allocation.restart_allocation(alloc_id)
    wait_for(lambda: client.allocation.get_allocation(alloc_id)["TaskStates"]["app"]
             ["Restarts"] == before + 1, "the restart")
    live = [a for a in client.job.get_allocations("files") if a["DesiredStatus"] == "run"]
    assert [a["ID"] for a in live] == [alloc_id], "restarted in place, not replaced"


def test_collection_of_a_stopped_allocation(running):
    client, _, driver = running
    job = {
        "ID": "short", "Type": "batch",
        "TaskGroups": [{"Name": "g", "Tasks": [{
            "Name": "t", "Driver": driver,
            "Config": task_config(driver, "/bin/true", [])}]}],
    }
    client.jobs.register_job({"Job": job})
    done = wait_for(lambda: [a for a in client.job.get_allocations("short")
                             if a["ClientStatus"] == "complete"], "the batch run")[0]
    client.client.gc_allocation.garbage_collect(done["ID"])
    with pytest.raises(nomad.api.exceptions.BaseNomadException):
        client.client.ls.list_files(done["ID"], "/")
    client.client.gc_all_allocations.garbage_collect()


def test_stream_file_follows_until_the_allocation_is_collected(running):
    client, _, driver = running
    script = "printf 'alpha\\nbeta\\n' > $NOMAD_ALLOC_DIR/data/s.txt"
    job = {
        "ID": "streamed", "Type": "batch",
        "TaskGroups": [{"Name": "g", "Tasks": [{
            "Name": "t", "Driver": driver,
            "Config": task_config(driver, "/bin/sh", ["-c", script])}]}],
    }
    client.jobs.register_job({"Job": job})
    done = wait_for(lambda: [a for a in client.job.get_allocations("streamed")
                             if a["ClientStatus"] == "complete"], "the batch run")[0]
    streamed = []
    follower = threading.Thread(daemon=True, target=lambda: streamed.append(
        client.client.stream_file.stream(done["ID"], 0, "start", "alloc/data/s.txt")))
    follower.start()
    time.sleep(1)
    assert follower.is_alive(), "a stream follows the file until it goes"
    client.client.gc_allocation.garbage_collect(done["ID"])
    follower.join(30)
    assert not follower.is_alive(), "the stream ends once the file is gone"
    decoder, text, at = json.JSONDecoder(), "", 0
    body = streamed[0]
    while at < len(body):
        frame, at = decoder.raw_decode(body, at)
        if frame.get("Data"):
            text += base64.b64decode(frame["Data"]).decode()
    assert text == "alpha\nbeta\n"
