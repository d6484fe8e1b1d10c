-- wrk script for scripts/bench: method/body from the environment, optional fixed-rate pacing, and a
-- one-line JSON summary (with p99.9, which `wrk --latency` does not print).
--   WRK_METHOD, WRK_BODY_FILE, WRK_CONTENT_TYPE: the request to send
--   WRK_HEADER: one more request header, "Name: value"
--   WRK_RATE: total requests per second to hold (0: as fast as the connections go). Pacing gives
--     request i the start slot t0 + i/rate; a connection that is free waits (delay()) for the next
--     unclaimed slot, so the offered rate holds while the server keeps up. Run with one thread.
--     Latency is measured from the actual send, so a saturated server shows up as an achieved rate
--     below the target (the harness reports both).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

wrk.method = os.getenv("WRK_METHOD") or "GET"
local body_file = os.getenv("WRK_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json"
end

local header = os.getenv("WRK_HEADER") -- one extra "Name: value" header, e.g. Authorization
if header and header ~= "" then
  local name, value = header:match("^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end

local rate = tonumber(os.getenv("WRK_RATE") or "0") or 0
if rate > 0 then
  local interval = 1000 / rate
  local t0, n = nil, 0
  function delay()
    local now = now_ms()
    if not t0 then t0 = now end
    n = n + 1
    local wait = t0 + n * interval - now
    if wait < 0 then return 0 end
    return wait
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
