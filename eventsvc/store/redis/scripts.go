package redis

import goredis "github.com/redis/go-redis/v9"

// appendScript is the whole append, atomic in the aggregate's slot.
//
// KEYS: 1 events, 2 snapshot, 3 idempotency, 4 log, 5 roots, 6 correlation
// ARGV: 1 expected, 2 checked ("1"/"0"), 3 idempotency key, 4 snapshot
// state, 5 has snapshot ("1"/"0"), 6 raw root, 7 correlation id,
// 8 traceparent, 9 tracestate ("" for none: the field is left out of the
// log entry), 10.. pages
//
// Replies: {0, first, next, offset, ts} stored; {1, first, next, offset,
// pages} duplicate; {2, next} conflict.
var appendScript = goredis.NewScript(`
local n = #ARGV - 9
local nxt = redis.call('LLEN', KEYS[1])
local key = ARGV[3]
if key ~= '' then
  local prior = redis.call('HGET', KEYS[3], key)
  if prior then
    local first, count, after, off = string.match(prior, '^(%d+) (%d+) (%d+) (%d+)$')
    first = tonumber(first)
    count = tonumber(count)
    local pages = {}
    if count > 0 then pages = redis.call('LRANGE', KEYS[1], first, first + count - 1) end
    return {1, first, tonumber(after), off, pages}
  end
end
if ARGV[2] == '1' and tonumber(ARGV[1]) ~= nxt then
  return {2, nxt}
end
local t = redis.call('TIME')
local ts = string.format('%010d%06d', tonumber(t[1]), tonumber(t[2]))
local after = nxt + n
local off = '0'
if n > 0 then
  local items = {}
  for i = 1, n do items[i] = ts .. ARGV[9 + i] end
  redis.call('RPUSH', KEYS[1], unpack(items))
  if nxt == 0 then redis.call('SADD', KEYS[5], ARGV[6]) end
  local entry = {'r', ARGV[6], 's', nxt, 'n', n, 'c', ARGV[7], 't', ts}
  if ARGV[8] ~= '' then
    entry[#entry + 1] = 'tp'
    entry[#entry + 1] = ARGV[8]
  end
  if ARGV[9] ~= '' then
    entry[#entry + 1] = 'tst'
    entry[#entry + 1] = ARGV[9]
  end
  local id = redis.call('XADD', KEYS[4], '0-*', unpack(entry))
  off = string.sub(id, 3)
  if ARGV[7] ~= '' then
    redis.call('RPUSH', KEYS[6], ARGV[6] .. ts .. ' ' .. nxt .. ' ' .. n)
  end
end
if ARGV[5] == '1' then
  redis.call('SET', KEYS[2], after .. ' ' .. ARGV[4])
end
if key ~= '' then
  redis.call('HSET', KEYS[3], key, nxt .. ' ' .. n .. ' ' .. after .. ' ' .. off)
end
return {0, nxt, after, off, ts}
`)

// loadScript reads a consistent view of one aggregate.
//
// KEYS: 1 events, 2 snapshot, 3 idempotency. ARGV: 1 idempotency key,
// 2 the most pages to return inline.
// Reply: {next, snapshot or "", first page sequence, pages, prior or "",
// prior pages}. When more than ARGV[2] pages follow the snapshot, pages is
// false: the caller reads them with LRANGE first next-1, which returns
// the same pages later since the list is append-only, and which Redis
// serves without turning a long reply into a Lua table and back.
var loadScript = goredis.NewScript(`
local nxt = redis.call('LLEN', KEYS[1])
local snap = redis.call('GET', KEYS[2])
local from = 0
if snap then
  from = tonumber(string.match(snap, '^(%d+) '))
else
  snap = ''
end
local pages = {}
if nxt - from > tonumber(ARGV[2]) then
  pages = false
elseif from < nxt then
  pages = redis.call('LRANGE', KEYS[1], from, nxt - 1)
end
local prior = ''
local priorPages = {}
if ARGV[1] ~= '' then
  local p = redis.call('HGET', KEYS[3], ARGV[1])
  if p then
    prior = p
    local first, count = string.match(p, '^(%d+) (%d+) ')
    first = tonumber(first)
    count = tonumber(count)
    if count > 0 then priorPages = redis.call('LRANGE', KEYS[1], first, first + count - 1) end
  end
end
return {nxt, snap, from, pages, prior, priorPages}
`)
