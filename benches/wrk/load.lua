-- wrk script for sessionward-bench. Arguments: METHOD COOKIE_FILE (or "-" for none).
-- Each request carries the next cookie of the file (round robin, each thread starting at a
-- random place), so requests spread over all the live sessions. `done` prints one JSON line.
local cookies = {}
local idx = 0

function init(args)
  wrk.method = args[1]
  if args[2] ~= nil and args[2] ~= "-" then
    local f = assert(io.open(args[2], "r"))
    for line in f:lines() do
      cookies[#cookies + 1] = line
    end
    f:close()
  end
  if #cookies > 0 then
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
    idx = math.random(#cookies)
  end
end

function request()
  if #cookies == 0 then
    return wrk.format(nil, nil, nil, nil)
  end
  idx = idx % #cookies + 1
  return wrk.format(nil, nil, { ["Cookie"] = cookies[idx] }, nil)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), errors))
end
