# An example job: one group running one task.
#
# Run it with `caravan job run example.nomad.hcl`; see what the server made of
# it with `caravan job status example`.
job "example" {
  # Where the job may run: "*" matches every datacenter.
  datacenters = ["*"]

  # A service runs until stopped; "batch" jobs run to completion.
  type = "service"

  # How new versions of the job replace the old allocations.
  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "3m"
    auto_revert      = false
  }

  group "sleepers" {
    # How many allocations of this group to run.
    count = 1

    network {
      # A dynamic port: the client picks a free one and exposes it to the task
      # as NOMAD_PORT_http.
      port "http" {}
    }

    # Restart a failed task twice within 30 minutes, then fail.
    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    task "sleep" {
      # raw_exec runs the command as a plain process on the client.
      driver = "raw_exec"

      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }

      env {
        # Evaluated by the client when the task starts.
        LISTEN_PORT = "${NOMAD_PORT_http}"
      }

      resources {
        cpu    = 100 # MHz
        memory = 64  # MB
      }

      # Give the task this long to exit after SIGINT before it is killed.
      kill_timeout = "10s"
    }
  }
}
