-- wrk script for the dars serving benchmark.
-- Cycles through the request paths of a URL-mix file (one path per line),
-- each thread starting at a different offset, with Accept-Encoding: gzip.
-- Usage: wrk ... -s bench/mix.lua http://127.0.0.1:PORT -- URLFILE
-- At the end prints one line "WRKJSON {...}" with exact totals for the report.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
local i = 0

function init(args)
  local file = args[1] or os.getenv("WRK_URLS")
  if not file then
    error("mix.lua: pass the URL file after --")
  end
  for line in io.lines(file) do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("GET", line, { ["Accept-Encoding"] = "gzip" })
    end
  end
  if #reqs == 0 then
    error("mix.lua: no URLs in " .. file)
  end
  -- spread the threads over the list (golden-ratio offsets)
  i = math.floor((id or 0) * 0.618034 * #reqs) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50.0), latency:percentile(90.0),
    latency:percentile(99.0), latency.max, latency.mean))
end
