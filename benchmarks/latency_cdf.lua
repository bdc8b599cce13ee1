-- post_body.lua's request, plus a latency distribution for CDF plots.
-- Usage: wrk ... --latency -s latency_cdf.lua URL -- BODY_FILE CONTENT_TYPE [HEADER VALUE]...
-- After wrk's own report, done() prints one "cdf <percent> <microseconds>" line per percentile;
-- compare/cdf.py reads them.

-- Reuse post_body.lua's init() from the same folder rather than repeating it.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "post_body.lua")

local PERCENTILES = {}
for percent = 1, 99 do
   PERCENTILES[#PERCENTILES + 1] = percent
end
for _, percent in ipairs({99.5, 99.9, 99.99}) do
   PERCENTILES[#PERCENTILES + 1] = percent
end

function done(summary, latency, requests)
   for _, percent in ipairs(PERCENTILES) do
      io.write(string.format("cdf %g %d\n", percent, latency:percentile(percent)))
   end
   -- percentile(100) reads 0 in wrk 4.1; the recorded maximum is the 100% point.
   io.write(string.format("cdf 100 %d\n", latency.max))
end
