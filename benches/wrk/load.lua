-- wrk script for sessionward-bench. Arguments: METHOD COOKIE_FILE (or "-" for none)
-- [USER_AGENT [BODY (or "-" for none)]].
-- Each request carries the next cookie of the file (round robin, each thread starting at a
-- random place), so requests spread over all the live sessions. A request with a body is
-- sent as JSON. Every request carries the same User-Agent as the sign-ins and
-- `Sec-Fetch-Site: same-origin`, as a browser's own fetches do. The requests are formatted
-- once, in init, so that the load generator spends its time sending, not in Lua.
-- `done` prints one JSON line.
local cookies = {}
local requests = {}
local idx = 0
local single = nil

function init(args)
  wrk.method = args[1]
  local headers = {}
  if args[3] ~= nil then
    headers["User-Agent"] = args[3]
    headers["Sec-Fetch-Site"] = "same-origin"
  end
  local body = nil
  if args[4] ~= nil and args[4] ~= "-" then
    body = args[4]
    headers["Content-Type"] = "application/json"
  end
  if args[2] ~= nil and args[2] ~= "-" then
    local f = assert(io.open(args[2], "r"))
    for line in f:lines() do
      cookies[#cookies + 1] = line
    end
    f:close()
  end
  if #cookies == 0 then
    single = wrk.format(nil, nil, headers, body)
    return
  end
  for i = 1, #cookies do
    headers["Cookie"] = cookies[i]
    requests[i] = wrk.format(nil, nil, headers, body)
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  idx = math.random(#requests)
end

function request()
  if single ~= nil then
    return single
  end
  idx = idx % #requests + 1
  return requests[idx]
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), errors))
end
