-- wrk script for benches/compare.sh: one fixed request per run, described by the environment
-- (WRK_METHOD, WRK_PATH, WRK_BODY_FILE, WRK_HEADERS = "Name: value|Name: value"), and a
-- machine-readable summary line at the end.
local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

wrk.method = env("WRK_METHOD", "POST")
wrk.path = env("WRK_PATH", "/")
local file = env("WRK_BODY_FILE", nil)
if file then
  local f = assert(io.open(file, "rb"))
  wrk.body = f:read("*a")
  f:close()
end
for pair in string.gmatch(env("WRK_HEADERS", ""), "[^|]+") do
  local name, value = string.match(pair, "^%s*([^:]+):%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
