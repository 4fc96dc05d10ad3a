-- wrk script for bench/inbox.py: replays pre-signed HTTP requests, paced to a fixed offered rate.
--
-- Environment (read by every wrk thread):
--   SPORE_REQUESTS  file of raw HTTP/1.1 requests, concatenated (empty: GET the URL given to wrk)
--   SPORE_OFFSETS   one "start length" line per request in that file
--   SPORE_PATH      when set, replaces the request target (the same bodies to another endpoint)
--   SPORE_INTERVAL_MS  one thread's interval between sends (threads / rate * 1000); 0: unpaced.
--                   Sends follow a fixed schedule (slot k at start + k * interval), whichever
--                   connection is free takes the next slot, and a late slot is sent at once: the
--                   offered rate stays fixed while responses are slower, as long as connections last.
--   SPORE_THREADS   wrk's -t, so that thread n replays requests n, n + T, n + 2T, ... (no id twice)
-- done() prints one line "SPORE_WRK {json}" with the latency percentiles and status counts.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } spore_timespec;
int clock_gettime(int clk_id, spore_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("spore_timespec")

local function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
   return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local requests = {}
local next_index = 1
local interval_ms = 0
local next_slot = nil

function init(args)
   interval_ms = tonumber(os.getenv("SPORE_INTERVAL_MS") or "0")
   statuses = {}
   exhausted = 0
   if (os.getenv("SPORE_REQUESTS") or "") == "" then
      -- no pre-signed requests: plain GETs of the URL wrk was given
      table.insert(requests, wrk.format("GET", nil, { ["Accept"] = "application/activity+json" }))
      return
   end
   local step = tonumber(os.getenv("SPORE_THREADS") or "1")
   local file = assert(io.open(os.getenv("SPORE_REQUESTS"), "rb"))
   local data = file:read("*a")
   file:close()
   local path = os.getenv("SPORE_PATH")
   local n = 0
   for line in io.lines(os.getenv("SPORE_OFFSETS")) do
      if n % step == tid then
         local start, length = line:match("(%d+) (%d+)")
         local raw = data:sub(tonumber(start) + 1, tonumber(start) + tonumber(length))
         if path and path ~= "" then
            raw = raw:gsub("^(%u+) %S+", "%1 " .. path, 1)
         end
         table.insert(requests, raw)
      end
      n = n + 1
   end
end

function delay()
   if interval_ms == 0 then
      return 0
   end
   local now = now_ms()
   next_slot = next_slot or now
   local slot = next_slot
   next_slot = next_slot + interval_ms
   return math.max(0, math.floor(slot - now))
end

function request()
   if #requests == 1 and (os.getenv("SPORE_REQUESTS") or "") == "" then
      return requests[1]
   end
   local raw = requests[next_index]
   if raw == nil then
      -- Out of distinct activities. On the inbox (SPORE_STOP_WHEN_DONE=1) stop this thread rather
      -- than replay ids, which the inbox answers cheaply as duplicates (wrk still reports the full
      -- duration); other endpoints do not care about ids and get replays. Counted either way.
      exhausted = exhausted + 1
      if os.getenv("SPORE_STOP_WHEN_DONE") == "1" then
         wrk.thread:stop()
      end
      raw = requests[#requests]
   else
      next_index = next_index + 1
   end
   return raw
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests_summary)
   local status_totals = {}
   local replays = 0
   for _, thread in ipairs(threads) do
      local seen = thread:get("statuses")
      for status, count in pairs(seen) do
         status_totals[status] = (status_totals[status] or 0) + count
      end
      replays = replays + thread:get("exhausted")
   end
   local parts = {}
   for status, count in pairs(status_totals) do
      table.insert(parts, string.format('"%d": %d', status, count))
   end
   local percentiles = {}
   for _, p in ipairs({ 50, 90, 99, 99.9 }) do
      table.insert(percentiles, string.format('"%s": %d', tostring(p), latency:percentile(p)))
   end
   io.write(string.format(
      'SPORE_WRK {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
      '"read_errors": %d, "write_errors": %d, "timeouts": %d, "non_2xx": %d, "replays": %d, ' ..
      '"latency_us": {%s, "max": %d, "mean": %.1f}, "statuses": {%s}}\n',
      summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
      summary.errors.write, summary.errors.timeout, summary.errors.status, replays,
      table.concat(percentiles, ", "), latency.max, latency.mean, table.concat(parts, ", ")))
end
