-- wrk script for bench/redirect.py: GET /{code} with a code drawn at random per request.
--
--   wrk -t1 -c64 -d10s -s bench/wrk/codes.lua http://127.0.0.1:PORT -- CODES_FILE
--
-- CODES_FILE is a plain list, one code per line. Every response's status is counted, and
-- `done` prints one line "WRK_JSON {...}" with the totals, the status counts and the latency
-- percentiles in microseconds, for the benchmark to parse: a grid fine enough near the tail
-- (every 0.01 % from 99) that runs can be merged into one distribution (bench/latency.py).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

function init(args)
   local path = args[1]
   if path == nil then
      error("usage: wrk ... -s codes.lua URL -- CODES_FILE")
   end
   codes = {}
   for line in io.lines(path) do
      if line ~= "" then
         codes[#codes + 1] = "/" .. line
      end
   end
   count = #codes
   if count == 0 then
      error("no codes in " .. path)
   end
   statuses = {}
   math.randomseed(os.time() * 1000 + id)
end

-- What a recipient's phone sends: a browser's user agent (classified once, then cached, but
-- stored with every click). Without it every click would be stored as an empty-agent bot.
local headers = {
   ["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
      .. " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
}

function request()
   return wrk.format("GET", codes[math.random(count)], headers)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local totals = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         totals[status] = (totals[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(totals) do
      parts[#parts + 1] = string.format('"%d": %d', status, n)
   end
   local grid = {}
   for i = 1, 89 do grid[#grid + 1] = i end
   for i = 900, 989 do grid[#grid + 1] = i / 10 end
   for i = 9900, 9999 do grid[#grid + 1] = i / 100 end
   local percentiles = {}
   for _, p in ipairs(grid) do
      percentiles[#percentiles + 1] = string.format('"%g": %d', p, latency:percentile(p))
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "statuses": {%s},'
         .. ' "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d},'
         .. ' "latency_us": {"mean": %.1f, "max": %d, "percentiles": {%s}}}\n',
      summary.requests, summary.duration, summary.bytes, table.concat(parts, ", "),
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency.mean, latency.max, table.concat(percentiles, ", ")))
end
