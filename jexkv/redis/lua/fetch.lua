--[[ fetch: claim up to a limit of ready jobs for one worker.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]   limit
  ARGV[5]   lock token of this claim
  ARGV[6]   lease ms
  ARGV[7]   worker name
  ARGV[8]   dead jobs to keep (-1: all), for jobs past their stall limit (defa), failed here
  Returns {next delayed due (ms; 0: none), claim, ...}: each claim one JSON array of the
  job's CLAIM_FIELDS (lib.lua) with its id in place of defa. Due delayed jobs are promoted
  first; a paused or full queue (meta.concurrency) or the rate limit claims nothing.
]]
return fetch(tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]))
