package redis

import goredis "github.com/redis/go-redis/v9"

// appendScript stores a group of appends to aggregates of one slot (one
// domain partition), each atomic and checked on its own, in order: a later
// append of the group sees the earlier ones. The whole group is one script
// call, so Redis runs it as one command and writes it to the AOF as one
// transaction (kill -9 leaves all of it or none; appendfsync always makes
// it durable before any reply).
//
// KEYS: 1 log, 2 roots, then 5 per append: events, snapshot, idempotency,
// correlation, size (the bytes of the pages after the snapshot, kept
// exact: set to 0 with a snapshot, added to when it exists or the
// aggregate is new).
// ARGV: 1 number of appends, then per append 11 head fields and its pages:
// expected, checked ("1"/"0"), idempotency key, snapshot state, has
// snapshot ("1"/"0"), raw root, correlation id, traceparent, tracestate
// ("" for none: the field is left out of the log entry), page count, the
// most bytes of pages after the snapshot (0: no bound; only checked where
// the size key is kept), pages...
//
// Reply: one reply per append: {0, first, next, offset, ts} stored;
// {1, first, next, offset, pages} duplicate; {2, next} conflict; {3,
// message} failed before writing anything (a key of the aggregate holds the
// wrong type), its neighbours unaffected; {4, size, adding} refused before
// writing anything: the pages would take the history after the snapshot
// beyond the bound.
var appendScript = goredis.NewScript(`
local t = redis.call('TIME')
local ts = string.format('%010d%06d', tonumber(t[1]), tonumber(t[2]))
local function failed(r)
  return type(r) == 'table' and r.err
end
local out = {}
local a = 2
for j = 1, tonumber(ARGV[1]) do
  local kb = 2 + (j - 1) * 5
  local kev, ksnap, kidem, kcorr, ksize = KEYS[kb + 1], KEYS[kb + 2], KEYS[kb + 3], KEYS[kb + 4], KEYS[kb + 5]
  local expected, checked, key, snap, hassnap = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local root, cid, tp, tst = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  local n = tonumber(ARGV[a + 9])
  local maxh = tonumber(ARGV[a + 10])
  local p0 = a + 11
  a = p0 + n
  local reply
  local nxt = redis.pcall('LLEN', kev)
  local prior = false
  if failed(nxt) then
    reply = {3, nxt.err}
  elseif key ~= '' then
    prior = redis.pcall('HGET', kidem, key)
    if failed(prior) then
      reply = {3, prior.err}
    elseif prior then
      local first, count, after, off = string.match(prior, '^(%d+) (%d+) (%d+) (%d+)$')
      first = tonumber(first)
      count = tonumber(count)
      local pages = {}
      if count > 0 then pages = redis.call('LRANGE', kev, first, first + count - 1) end
      reply = {1, first, tonumber(after), off, pages}
    end
  end
  if not reply and checked == '1' and tonumber(expected) ~= nxt then
    reply = {2, nxt}
  end
  -- az:size as read here (false: absent) serves both the bound check and
  -- the count below, one GET per append.
  local cursize = false
  if not reply and n > 0 and hassnap ~= '1' then
    local cur = redis.pcall('GET', ksize)
    if failed(cur) then
      reply = {3, cur.err}
    elseif cur then
      cursize = cur
      if maxh > 0 then
        local add = 0
        for i = 1, n do add = add + 16 + #ARGV[p0 + i - 1] end
        if tonumber(cur) + add > maxh then reply = {4, tonumber(cur), add} end
      end
    end
  end
  if not reply and n > 0 and cid ~= '' then
    -- The first write: the one that can still fail on its own key's type
    -- (the others' keys were read above, or are shared by the group).
    local c = redis.pcall('RPUSH', kcorr, root .. ts .. ' ' .. nxt .. ' ' .. n)
    if failed(c) then reply = {3, c.err} end
  end
  if not reply then
    local after = nxt + n
    local off = '0'
    if n > 0 then
      local items = {}
      local size = 0
      for i = 1, n do
        items[i] = ts .. ARGV[p0 + i - 1]
        size = size + #items[i]
      end
      redis.call('RPUSH', kev, unpack(items))
      if hassnap ~= '1' and (nxt == 0 or cursize) then
        redis.call('INCRBY', ksize, size)
      end
      if nxt == 0 then redis.call('ZADD', KEYS[2], 0, root) end
      local entry = {'r', root, 's', nxt, 'n', n, 'c', cid, 't', ts}
      if tp ~= '' then
        entry[#entry + 1] = 'tp'
        entry[#entry + 1] = tp
      end
      if tst ~= '' then
        entry[#entry + 1] = 'tst'
        entry[#entry + 1] = tst
      end
      local id = redis.call('XADD', KEYS[1], '0-*', unpack(entry))
      off = string.sub(id, 3)
    end
    if hassnap == '1' then
      redis.call('SET', ksnap, after .. ' ' .. snap)
      redis.call('SET', ksize, 0)
    end
    if key ~= '' then
      redis.call('HSET', kidem, key, nxt .. ' ' .. n .. ' ' .. after .. ' ' .. off)
    end
    reply = {0, nxt, after, off, ts}
  end
  out[j] = reply
end
return out
`)

// loadScript reads a consistent view of one aggregate, or one page of it.
//
// KEYS: 1 events, 2 snapshot, 3 idempotency, 4 size. ARGV: 1 idempotency key,
// 2 the most pages to return inline, 3 the most bytes of a page (0: no
// bound; a page has at least one event; each event counts its stored
// length plus 48, store.EventBytes, the snapshot its length), 4 0 for the
// first page, else the sequence a continuation starts from, 5 the
// continuation's end (exclusive).
// Reply: {next, snapshot or "", first page sequence, pages, page count,
// prior or "", prior pages}. When more than ARGV[2] pages are in the page,
// pages is false: the caller reads them with LRANGE first
// first+count-1, which returns the same pages later since the list is
// append-only, and which Redis serves without turning a long reply into a
// Lua table and back. A page bounded by ARGV[3] is measured here, in
// chunks of 64 events, unless the size key shows the whole rest fits;
// count < next - first says where the rest begins.
var loadScript = goredis.NewScript(`
local inline, maxb, cont = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local nxt, snap, from
if cont > 0 then
  -- Not past the end: a continuation's pages exist (More never points to none).
  nxt, snap, from = math.min(tonumber(ARGV[5]), redis.call('LLEN', KEYS[1])), '', cont
else
  nxt = redis.call('LLEN', KEYS[1])
  snap = redis.call('GET', KEYS[2])
  from = 0
  if snap then
    from = tonumber(string.match(snap, '^(%d+) '))
    if maxb > 0 then maxb = math.max(1, maxb - #snap) end
  else
    snap = ''
  end
end
local count = math.max(0, nxt - from)
local pages = {}
if maxb > 0 and cont == 0 and count > 0 then
  local size = redis.call('GET', KEYS[4])
  if size and tonumber(size) + 48 * count <= maxb then maxb = 0 end
end
if maxb > 0 and count > 0 then
  local used, n, i = 0, 0, from
  local cut = false
  while i < nxt and not cut do
    local chunk = redis.call('LRANGE', KEYS[1], i, math.min(i + 63, nxt - 1))
    if #chunk == 0 then break end
    for _, p in ipairs(chunk) do
      local sz = #p + 48
      if n > 0 and used + sz > maxb then
        cut = true
        break
      end
      used = used + sz
      n = n + 1
      if n <= inline then pages[n] = p end
    end
    i = i + #chunk
  end
  count = n
  if count > inline then pages = false end
elseif count > inline then
  pages = false
elseif count > 0 then
  pages = redis.call('LRANGE', KEYS[1], from, nxt - 1)
end
local prior = ''
local priorPages = {}
if cont == 0 and ARGV[1] ~= '' then
  local p = redis.call('HGET', KEYS[3], ARGV[1])
  if p then
    prior = p
    local first, cnt = string.match(p, '^(%d+) (%d+) ')
    first = tonumber(first)
    cnt = tonumber(cnt)
    if cnt > 0 then priorPages = redis.call('LRANGE', KEYS[1], first, first + cnt - 1) end
  end
end
return {nxt, snap, from, pages, count, prior, priorPages}
`)
