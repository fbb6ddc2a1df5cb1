-- wrk script: scheduler configuration PUTs, alternating the algorithm so
-- every request is a real Raft write.
local bodies = {
  '{"SchedulerAlgorithm":"spread","PreemptionConfig":{"SystemSchedulerEnabled":true}}',
  '{"SchedulerAlgorithm":"binpack","PreemptionConfig":{"SystemSchedulerEnabled":true}}',
}
local n = 0
request = function()
  n = n + 1
  return wrk.format("PUT", "/v1/operator/scheduler/configuration",
    {["Content-Type"] = "application/json"}, bodies[(n % 2) + 1])
end
