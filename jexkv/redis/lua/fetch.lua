--[[ fetch: ARGV[3] = limit, ARGV[4] = lock token, ARGV[5] = lease ms, ARGV[6] = worker name,
ARGV[7] = dead jobs to keep (-1: all). Returns {next delayed due, id, hash, ...}. ]]
return fetch(tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]))
