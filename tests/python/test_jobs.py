"""python-nomad's job calls against a real Caravan agent.

`validate_job` returns the raw response (python-nomad does not decode it).
"""

import nomad
import pytest

from conftest import ready_dev_agent, wait_for


@pytest.fixture(scope="module")
def job_agent():
    started = ready_dev_agent()
    yield started
    started.stop()


def job(**overrides):
    spec = {
        "ID": "web",
        "TaskGroups": [
            {"Name": "web", "Tasks": [{"Name": "app", "Driver": "raw_exec",
                                       "Config": {"command": "/bin/sleep", "args": ["600"]}}]}
        ],
    }
    spec.update(overrides)
    return spec


def test_validate_accepts_a_good_job(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    answer = client.validate.validate_job({"Job": job()}).json()
    assert answer["ValidationErrors"] is None
    assert answer["Error"] == ""
    assert answer["DriverConfigValidated"] is True


def test_validate_lists_every_problem_nested(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    bad = job(Priority=500, TaskGroups=[{"Name": "cache", "Tasks": [{"Name": "redis"}]}])
    answer = client.validate.validate_job({"Job": bad}).json()
    assert answer["ValidationErrors"] == [
        "job priority must be between [1, 100]",
        "Task group cache validation failed: 1 error occurred:\n"
        "\t* Task redis validation failed: 1 error occurred:\n"
        "\t* Missing task driver\n\n\n\n",
    ]
    assert answer["Error"].startswith("2 errors occurred:\n\t* job priority")


def test_validate_without_a_job_is_a_bad_request(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    with pytest.raises(nomad.api.exceptions.BadRequestNomadException):
        client.validate.validate_job({})


HCL = """
variable "count" {
  default = 2
}

job "hcl-web" {
  group "web" {
    count = var.count
    network {
      port "http" { to = 8080 }
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["60"]
      }
      env {
        KERNEL = "${attr.kernel.name}"
      }
    }
  }
}
"""


def test_register_read_list_and_version_a_job(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    answer = client.jobs.register_job({"Job": job(ID="reg")})
    assert answer["EvalID"] and answer["EvalCreateIndex"] == answer["Index"]
    assert answer["JobModifyIndex"] == answer["Index"]

    stored = client.job.get_job("reg")
    assert stored["Type"] == "service" and stored["Priority"] == 50
    assert stored["Datacenters"] == ["*"] and stored["NodePool"] == "default"
    group = stored["TaskGroups"][0]
    assert group["Count"] == 1
    assert group["RestartPolicy"]["Attempts"] == 2
    assert group["Tasks"][0]["Resources"]["MemoryMB"] == 300

    ids = [stub["ID"] for stub in client.jobs.get_jobs(prefix="re")]
    assert ids == ["reg"]
    summary = client.job.get_summary("reg")
    assert list(summary["Summary"]) == ["web"]

    evals = client.job.get_evaluations("reg")
    assert [e["ID"] for e in evals] == [answer["EvalID"]]
    assert evals[0]["TriggeredBy"] == "job-register"
    one = client.evaluation.get_evaluation(answer["EvalID"])
    assert one["JobID"] == "reg" and one["Status"] in ("pending", "complete")

    # The same spec again makes no new version; a changed one does.
    again = client.job.register_job("reg", {"Job": job(ID="reg")})
    assert again["JobModifyIndex"] == answer["JobModifyIndex"]
    changed = job(ID="reg")
    changed["TaskGroups"][0]["Count"] = 3
    client.job.register_job("reg", {"Job": changed})
    versions = client.job.get_versions("reg")["Versions"]
    assert [v["Version"] for v in versions] == [1, 0]

    evaluated = client.job.evaluate_job("reg")
    assert evaluated["EvalID"] not in (answer["EvalID"], "")


def test_an_invalid_job_is_refused_and_nothing_is_written(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    bad = job(ID="broken", TaskGroups=[{"Name": "g", "Tasks": [{"Name": "t"}]}])
    with pytest.raises(nomad.api.exceptions.BadRequestNomadException) as refused:
        client.jobs.register_job({"Job": bad})
    assert "Missing task driver" in refused.value.nomad_resp.text
    with pytest.raises(nomad.api.exceptions.URLNotFoundNomadException):
        client.job.get_job("broken")


def test_enforce_index_conflict_is_409_with_nomads_text(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    client.jobs.register_job({"Job": job(ID="cas")})
    with pytest.raises(nomad.api.exceptions.BaseNomadException) as refused:
        client.jobs.register_job({"Job": job(ID="cas"), "EnforceIndex": True,
                                  "JobModifyIndex": 1})
    assert refused.value.nomad_resp.status_code == 409
    assert refused.value.nomad_resp.text.startswith(
        "Enforcing job modify index 1: job exists with conflicting job modify index: ")


def test_stop_then_purge(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    client.jobs.register_job({"Job": job(ID="gone")})
    stopped = client.job.deregister_job("gone")
    assert stopped["EvalID"]
    assert client.job.get_job("gone")["Stop"] is True
    client.job.deregister_job("gone", purge=True)
    with pytest.raises(nomad.api.exceptions.URLNotFoundNomadException):
        client.job.get_job("gone")
    # An unknown job deregisters without an error and without an eval.
    assert client.job.deregister_job("never")["EvalID"] == ""


def test_parse_hcl_keeps_runtime_interpolations(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    parsed = client.jobs.parse(HCL)
    assert parsed["ID"] == "hcl-web"
    group = parsed["TaskGroups"][0]
    assert group["Count"] == 2
    assert group["Networks"][0]["DynamicPorts"] == [{"Label": "http", "To": 8080}]
    assert group["Tasks"][0]["Env"] == {"KERNEL": "${attr.kernel.name}"}
    assert parsed["Priority"] is None
    canonical = client.jobs.parse(HCL, canonicalize=True)
    assert canonical["Priority"] == 0  # the server default comes later
    assert canonical["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] == 100
    with pytest.raises(nomad.api.exceptions.BadRequestNomadException) as refused:
        client.jobs.parse('job "x" {\n  group "g" {\n    count = \n  }\n}\n')
    assert refused.value.nomad_resp.text.startswith("Failed to parse job: input.hcl:3,")


def live(allocs):
    return sorted(a["Name"] for a in allocs if a["DesiredStatus"] == "run")


def test_the_scheduler_places_scales_and_stops(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    spec = job(ID="placed")
    spec["TaskGroups"][0]["Count"] = 3
    answer = client.jobs.register_job({"Job": spec})
    allocs = wait_for(lambda: len(live(client.job.get_allocations("placed"))) == 3
                      and client.job.get_allocations("placed"), "three placements")
    assert live(allocs) == ["placed.web[0]", "placed.web[1]", "placed.web[2]"]
    node_id = client.nodes.get_nodes()[0]["ID"]
    assert {a["NodeID"] for a in allocs} == {node_id}
    one = client.allocation.get_allocation(allocs[0]["ID"])
    assert one["Job"]["ID"] == "placed"
    assert one["AllocatedResources"]["Tasks"]["app"]["Memory"]["MemoryMB"] == 300
    done = wait_for(lambda: client.evaluation.get_evaluation(answer["EvalID"])["Status"]
                    == "complete", "the eval to complete")
    assert done
    assert len(client.evaluation.get_allocations(answer["EvalID"])) == 3
    assert any(a["JobID"] == "placed" for a in client.allocations.get_allocations())

    spec["TaskGroups"][0]["Count"] = 1
    client.jobs.register_job({"Job": spec})
    wait_for(lambda: live(client.job.get_allocations("placed")) == ["placed.web[0]"],
             "the scale down to stop the highest indexes")
    stopped = [a for a in client.job.get_allocations("placed") if a["DesiredStatus"] == "stop"]
    assert {a["DesiredDescription"] for a in stopped} == {"alloc not needed due to job update"}

    client.job.deregister_job("placed")
    wait_for(lambda: live(client.job.get_allocations("placed")) == [], "the stop")


def test_an_unsatisfiable_constraint_is_reported_and_blocked(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    spec = job(ID="nowhere")
    spec["TaskGroups"][0]["Constraints"] = [
        {"LTarget": "${attr.kernel.name}", "Operand": "=", "RTarget": "plan9"}]
    answer = client.jobs.register_job({"Job": spec})
    evaluation = wait_for(
        lambda: (e := client.evaluation.get_evaluation(answer["EvalID"]))["Status"]
        == "complete" and e, "the eval to complete")
    failed = evaluation["FailedTGAllocs"]["web"]
    assert failed["ConstraintFiltered"] == {"${attr.kernel.name} = plan9": 1}
    assert failed["NodesEvaluated"] == 1
    blocked = client.evaluation.get_evaluation(evaluation["BlockedEval"])
    assert blocked["Status"] == "blocked" and blocked["TriggeredBy"] == "queued-allocs"
    assert client.job.get_allocations("nowhere") == []
    assert client.job.get_summary("nowhere")["Summary"]["web"]["Queued"] == 1


def test_an_allocation_stopped_is_replaced_and_evaluations_list(job_agent):
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    answer = client.jobs.register_job({"Job": job(ID="moved")})
    first = wait_for(lambda: live(client.job.get_allocations("moved")) == ["moved.web[0]"]
                     and client.job.get_allocations("moved")[0], "the placement")
    # python-nomad's evaluations list, whole and by prefix.
    listed = client.evaluations.get_evaluations()
    assert answer["EvalID"] in [e["ID"] for e in listed]
    by_prefix = client.evaluations.get_evaluations(prefix=answer["EvalID"][:6])
    assert [e["ID"] for e in by_prefix] == [answer["EvalID"]]

    stopped = client.allocation.stop_allocation(first["ID"])
    assert stopped["EvalID"] and stopped["Index"] > 0
    evaluation = client.evaluation.get_evaluation(stopped["EvalID"])
    assert evaluation["TriggeredBy"] == "alloc-stop" and evaluation["JobID"] == "moved"
    # The stopped allocation is replaced: same name, new ID, linked.
    replaced = wait_for(
        lambda: [a for a in client.job.get_allocations("moved")
                 if a["DesiredStatus"] == "run" and a["ID"] != first["ID"]],
        "the replacement")
    assert replaced[0]["Name"] == "moved.web[0]"
    old = client.allocation.get_allocation(first["ID"])
    assert old["DesiredStatus"] == "stop"
    assert old["DesiredTransition"]["Migrate"] is True
    assert old["NextAllocation"] == replaced[0]["ID"]
    # No deployments yet: an empty list, as Nomad answers for a job without.
    assert client.job.get_deployments("moved") == []
    client.job.deregister_job("moved")


def test_eligibility_and_drain_with_running_work(job_agent):
    """Kept last in this module: it drains the dev node (and undoes it)."""
    client = nomad.Nomad(address=job_agent.address, timeout=10)
    node_id = client.nodes.get_nodes()[0]["ID"]
    client.jobs.register_job({"Job": job(ID="kept")})
    wait_for(lambda: [a for a in client.job.get_allocations("kept")
                      if a["ClientStatus"] == "running"], "the placement")

    # Node evaluate: one node-update evaluation per job that has (or had)
    # an allocation on the node.
    answer = client.node.evaluate_node(node_id)
    assert answer["EvalCreateIndex"] > 0
    evaluations = [client.evaluation.get_evaluation(i) for i in answer["EvalIDs"]]
    jobs = [e["JobID"] for e in evaluations]
    assert "kept" in jobs and len(jobs) == len(set(jobs))
    assert all(e["TriggeredBy"] == "node-update" and e["NodeID"] == node_id
               for e in evaluations)

    # Ineligible: what runs stays, nothing new is placed.
    client.node.eligible_node(node_id, ineligible=True)
    answer = client.jobs.register_job({"Job": job(ID="waits")})
    wait_for(lambda: client.evaluation.get_evaluation(answer["EvalID"])["Status"]
             == "complete", "the eval to complete")
    assert client.job.get_allocations("waits") == []
    assert live(client.job.get_allocations("kept")) == ["kept.web[0]"]
    wait_for(lambda: any(e["Status"] == "blocked" for e in client.job.get_evaluations("waits")),
             "the job's blocked evaluation")

    # Eligible again: the blocked job is placed.
    client.node.eligible_node(node_id, eligible=True)
    wait_for(lambda: [a for a in client.job.get_allocations("waits")
                      if a["ClientStatus"] == "running"], "the blocked job placed")

    # A forced drain stops everything (nowhere else to go) and completes
    # once the client has stopped it.
    client.node.drain_node_with_spec(node_id, {"Deadline": -1, "IgnoreSystemJobs": False})
    done = wait_for(
        lambda: (lambda n: n if n["DrainStrategy"] is None else None)(
            client.node.get_node(node_id)), "the drain to complete")
    assert done["LastDrain"]["Status"] == "complete"
    assert done["SchedulingEligibility"] == "ineligible"
    for job_id in ("kept", "waits"):
        allocs = client.job.get_allocations(job_id)
        old = [a for a in allocs if a["DesiredDescription"] == "alloc is being migrated"]
        assert old and all(a["ClientStatus"] == "complete" for a in old), allocs
    client.node.drain_node_with_spec(node_id, None, mark_eligible=True)
    assert client.node.get_node(node_id)["SchedulingEligibility"] == "eligible"
    for job_id in ("kept", "waits"):
        client.job.deregister_job(job_id)
