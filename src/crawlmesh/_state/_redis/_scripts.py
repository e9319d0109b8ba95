"""The Lua scripts the Redis backend runs: each is one atomic round trip.

Keys (``P`` is the crawl's prefix, ``crawlmesh:{NAME}:``; the braces are a
Redis Cluster hash tag, so every key of a crawl lives in one slot and the
scripts may touch them all):

``P q:DOMAIN``      zset: queued requests of a domain; member ``SEQ:RECORD``,
                    score ``-priority * 2**40 + SEQ`` (priority first, then FIFO)
``P domains``       list: domains with queued requests, in service order
``P dset``          set: the same domains (so a domain is listed once)
``P seq``           the sequence counter
``P seen``          set of 16-byte fingerprints (or ``P bloom``, a bitmap)
``P queued``        how many requests are queued, across domains
``P leased``        how many are leased to workers
``P lease:WORKER``  hash: member -> ``DOMAIN \\n SCORE`` of each leased request
``P workers``       zset: worker -> when its lease expires (ms, Redis's clock)
``P dead``          set: workers whose leases were taken back (fenced off)
``P seed``          the seeding worker's id while it seeds (with a TTL), then ``done``
``P outputs``       hash: items file -> its committed length
``P outputs:owner`` hash: items file -> the worker writing it
``P last``          when a worker last synced (an outage does not expire leases)
``P pause``         hash: domain -> until when it is paused (ms, a Retry-After)
``P gcra:KEY``      a shared rate limit's theoretical arrival time (µs)
``P sess:SESSION``  the node a session is on (expires when idle)
``P breakers``      hash: ``NODE \\n DOMAIN`` -> until when that breaker is open (ms)
``P stats``         hash: the merged counters of every worker that ended
``P handed``        requests handed out to workers (with ``backend.max_pages``;
                    the leases taken back are counted again when handed again)
``P once:TOKEN``    a request queued with ``dont_filter`` (a batch sent again
                    queues it once); expires after a day
``P mark:TOKEN``    a redirect's target that was new to the crawl when a worker
                    asked (the same question sent again gets the same answer);
                    expires after a day
``P never``         never written: every script declares it among its keys, so
                    a Redis Cluster refuses the script while the crawl's slot
                    migrates (ASK, then TRYAGAIN: a key is missing) instead of
                    running it half on each node
``P epoch``         the crawl's identity, set by its first sync: a worker that
                    knew one and finds it gone (or changed) stops (the crawl's
                    state was lost: a Redis restarted without persistence,
                    FLUSHALL, eviction) rather than crawl it all over again
"""

from __future__ import annotations

__all__ = ["BACKLOG", "CLOSE", "GCRA", "OPEN", "STICK", "SYNC"]

# Shared by the scripts: the clock, and putting a request back in its queue.
_PRELUDE = """
local P = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function enqueue(domain, score, member)
  if redis.call('SADD', P .. 'dset', domain) == 1 then
    redis.call('RPUSH', P .. 'domains', domain)
  end
  redis.call('ZADD', P .. 'q:' .. domain, score, member)
end

-- n requests move from leased to queued (n < 0: from queued to leased).
local function unlease(n)
  if n ~= 0 then
    redis.call('INCRBY', P .. 'queued', n)
    redis.call('DECRBY', P .. 'leased', n)
  end
end

-- Put a worker's leased requests back in their queues, except `keep`.
local function requeue_leases(worker, keep)
  local key = P .. 'lease:' .. worker
  local entries = redis.call('HGETALL', key)
  local n = 0
  for i = 1, #entries, 2 do
    if not (keep and keep[entries[i]]) then
      local where = entries[i + 1]
      local nl = string.find(where, '\\n', 1, true)
      enqueue(string.sub(where, 1, nl - 1), string.sub(where, nl + 1), entries[i])
      redis.call('HDEL', key, entries[i])
      n = n + 1
    end
  end
  unlease(n)
  if n > 0 and redis.call('EXISTS', P .. 'handed') == 1 then
    redis.call('DECRBY', P .. 'handed', n)
  end
  return n
end

local function live(worker)
  local expiry = redis.call('ZSCORE', P .. 'workers', worker)
  return expiry and tonumber(expiry) > now
end
"""

# ARGV: prefix, worker, ttl_ms, want, dedupe ('set' | 'bloom'), the crawl's
# epoch as the worker knows it ('' before its first sync), the crawl-wide
# cap on requests handed out ('0': none), then ops:
#   'p' domain priority record fp check   queue a request (fp '' = none;
#                                          check '1': drop it if seen, else a
#                                          token: queue it once per token)
#   'a' member                             it finished: end its lease
#   'm' fp token                           mark seen (a URL a redirect reached);
#                                          token '' or one to answer for: was
#                                          fp new to the crawl? (an answer that
#                                          holds when the op is sent again)
#   'o' file length                        the items file's committed length
#   's'                                    seeding is done
#   'x' domain until_ms                    pause a domain (Retry-After)
#   'r' n member...                        hand back every lease but these
#   'k' session node ttl_ms                store a session's node
#   'b' NODE\nDOMAIN until_ms             a breaker is open (domain '' for the node's)
# Returns {state, seed, queued, leased, reaped, pushed, lost, claimed, pauses,
# now_ms, breakers, epoch, capped, marks} with capped 1 once the cap is reached,
# marks = {token, 1 (new) or 0, ...} for the 'm' ops with a token,
# claimed = {member, domain, ...}, pauses = {domain, until_ms, ...} and
# breakers = {NODE\nDOMAIN, until_ms, ...}; or
# {'fenced'}; or {'lost', epoch or false} when the epoch the worker knew is
# not the crawl's (nothing is changed then: an emptied Redis stays empty).
SYNC = (
    _PRELUDE
    + """
local worker = ARGV[2]
local ttl = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local bloom = ARGV[5] == 'bloom'

local epoch = redis.call('GET', P .. 'epoch')
if ARGV[6] ~= '' and epoch ~= ARGV[6] then
  return {'lost', epoch}
end
if not epoch then
  epoch = worker .. '@' .. now
  redis.call('SET', P .. 'epoch', epoch)
end

if redis.call('SISMEMBER', P .. 'dead', worker) == 1 then
  return {'fenced'}
end

-- Every live worker syncs at least every ttl/4: a longer silence of them
-- all means Redis was unreachable (down, restarted, cut off), and nobody's
-- lease ran out meanwhile. The leases (and the seeder's hold) are extended
-- by the gap.
local last = tonumber(redis.call('GET', P .. 'last') or now)
local gap = now - last
if gap > ttl / 3 then
  local all = redis.call('ZRANGE', P .. 'workers', 0, -1, 'WITHSCORES')
  for j = 1, #all, 2 do
    redis.call('ZADD', P .. 'workers', tonumber(all[j + 1]) + gap, all[j])
  end
  local hold = redis.call('PTTL', P .. 'seed')
  if hold > 0 then
    redis.call('PEXPIRE', P .. 'seed', hold + gap)
  end
end
redis.call('SET', P .. 'last', now)

-- Workers silent past their lease: their requests go back to the queues.
-- (Not the caller: it is here, and whatever it holds was not taken back.)
local reaped = 0
for _, w in ipairs(redis.call('ZRANGEBYSCORE', P .. 'workers', '-inf', now)) do
  if w ~= worker then
    reaped = reaped + requeue_leases(w)
    redis.call('ZREM', P .. 'workers', w)
    redis.call('SADD', P .. 'dead', w)
  end
end
redis.call('ZADD', P .. 'workers', now + ttl, worker)

local seed = redis.call('GET', P .. 'seed')
if seed == worker then
  redis.call('PEXPIRE', P .. 'seed', ttl)
elseif not seed then
  redis.call('SET', P .. 'seed', worker, 'PX', ttl)
  seed = worker
end

local pushed, lost = 0, 0
local marks = {}
local i = 8
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'p' then
    local domain, fp = ARGV[i + 1], ARGV[i + 4]
    local new = 1
    if fp ~= '' then
      if bloom then
        new = 0
        for pos in string.gmatch(fp, '%d+') do
          if redis.call('SETBIT', P .. 'bloom', pos, 1) == 0 then new = 1 end
        end
      else
        new = redis.call('SADD', P .. 'seen', fp)
      end
    end
    local check, go = ARGV[i + 5], new == 1
    if check ~= '1' then
      -- Not deduplicated (dont_filter), but queued once per token, so a
      -- batch sent again after a lost reply queues nothing twice.
      go = redis.call('SET', P .. 'once:' .. check, 1, 'NX', 'PX', 86400000) ~= false
    end
    if go then
      local seq = redis.call('INCR', P .. 'seq')
      local priority = math.max(-4000, math.min(4000, tonumber(ARGV[i + 2])))
      enqueue(domain, -priority * 1099511627776 + seq, seq .. ':' .. ARGV[i + 3])
      redis.call('INCR', P .. 'queued')  -- (per op: an error later keeps it true)
      pushed = pushed + 1
    end
    i = i + 6
  elseif op == 'm' then
    local fp, token = ARGV[i + 1], ARGV[i + 2]
    local new = 0
    if bloom then
      for pos in string.gmatch(fp, '%d+') do
        if redis.call('SETBIT', P .. 'bloom', pos, 1) == 0 then new = 1 end
      end
    else
      new = redis.call('SADD', P .. 'seen', fp)
    end
    if token ~= '' then
      -- Remembered, so that the same op sent again (its reply lost) gets
      -- the same answer rather than "seen" (by itself).
      if new == 1 then
        redis.call('SET', P .. 'mark:' .. token, 1, 'PX', 86400000)
      elseif redis.call('EXISTS', P .. 'mark:' .. token) == 1 then
        new = 1
      end
      marks[#marks + 1] = token
      marks[#marks + 1] = new
    end
    i = i + 3
  elseif op == 'a' then
    if redis.call('HDEL', P .. 'lease:' .. worker, ARGV[i + 1]) == 1 then
      redis.call('DECR', P .. 'leased')
    else
      lost = lost + 1
    end
    i = i + 2
  elseif op == 'o' then
    redis.call('HSET', P .. 'outputs', ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif op == 's' then
    if seed == worker then
      redis.call('SET', P .. 'seed', 'done')
      seed = 'done'
    end
    i = i + 1
  elseif op == 'k' then
    redis.call('SET', P .. 'sess:' .. ARGV[i + 1], ARGV[i + 2], 'PX', ARGV[i + 3])
    i = i + 4
  elseif op == 'b' then
    local old = tonumber(redis.call('HGET', P .. 'breakers', ARGV[i + 1]) or '0')
    if tonumber(ARGV[i + 2]) > old then
      redis.call('HSET', P .. 'breakers', ARGV[i + 1], ARGV[i + 2])
    end
    i = i + 3
  elseif op == 'r' then
    -- After a sync whose reply was lost: hand back the leases it may have
    -- made that this worker never received (it sends the ones it holds).
    local n = tonumber(ARGV[i + 1])
    local keep = {}
    for j = i + 2, i + 1 + n do keep[ARGV[j]] = true end
    requeue_leases(worker, keep)
    i = i + 2 + n
  elseif op == 'x' then
    local old = tonumber(redis.call('HGET', P .. 'pause', ARGV[i + 1]) or '0')
    if tonumber(ARGV[i + 2]) > old then
      redis.call('HSET', P .. 'pause', ARGV[i + 1], ARGV[i + 2])
    end
    i = i + 3
  else
    return redis.error_reply('crawlmesh: unknown op ' .. tostring(op))
  end
end

-- Claim up to `want` requests, one domain after another (within the cap).
local cap = tonumber(ARGV[7])
local handed = 0
if cap > 0 then
  handed = tonumber(redis.call('GET', P .. 'handed') or '0')
  want = math.min(want, math.max(0, cap - handed))
end
local claimed = {}
local n = 0
local lease = P .. 'lease:' .. worker
for _ = 1, want + 64 do
  if n >= want then break end
  local domain = redis.call('LMOVE', P .. 'domains', P .. 'domains', 'LEFT', 'RIGHT')
  if not domain then break end
  local q = P .. 'q:' .. domain
  local got = redis.call('ZPOPMIN', q)
  if #got > 0 then
    redis.call('HSET', lease, got[1], domain .. '\\n' .. got[2])
    claimed[#claimed + 1] = got[1]
    claimed[#claimed + 1] = domain
    n = n + 1
  end
  if #got == 0 or redis.call('EXISTS', q) == 0 then
    redis.call('LREM', P .. 'domains', -1, domain)
    redis.call('SREM', P .. 'dset', domain)
  end
end
unlease(-n)
if cap > 0 and n > 0 then
  handed = redis.call('INCRBY', P .. 'handed', n)
end
local capped = 0
if cap > 0 and handed >= cap then capped = 1 end

-- Entries of a hash of deadlines still in the future (the rest are dropped).
local function live_entries(key)
  local out = {}
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    if tonumber(all[j + 1]) > now then
      out[#out + 1] = all[j]
      out[#out + 1] = all[j + 1]
    else
      redis.call('HDEL', key, all[j])
    end
  end
  return out
end
local pauses = live_entries(P .. 'pause')
local breakers = live_entries(P .. 'breakers')

local state = 'ok'
if seed == worker then state = 'seeding' end
return {
  state, seed,
  tonumber(redis.call('GET', P .. 'queued') or '0'),
  tonumber(redis.call('GET', P .. 'leased') or '0'),
  reaped, pushed, lost, claimed, pauses, now, breakers, epoch, capped, marks,
}
"""
)

# ARGV: prefix, worker, file, ttl_ms. Claims the items file for this worker
# (and counts the worker live from now on). Returns {'busy', owner} if a
# live worker writes it, else {'ok', committed length or ''}; a file new to
# the crawl is committed at 0 (the worker starts it afresh).
OPEN = (
    _PRELUDE
    + """
local worker, file = ARGV[2], ARGV[3]
local owner = redis.call('HGET', P .. 'outputs:owner', file)
if owner and owner ~= worker and live(owner) then
  return {'busy', owner}
end
redis.call('ZADD', P .. 'workers', now + tonumber(ARGV[4]), worker)
redis.call('HSET', P .. 'outputs:owner', file, worker)
local committed = redis.call('HGET', P .. 'outputs', file)
if not committed then
  redis.call('HSET', P .. 'outputs', file, 0)
  committed = '0'
end
return {'ok', committed}
"""
)

# ARGV: prefix, worker, host, then counter name/value pairs to merge.
# Ends the worker: its leases go back to the queues, its counters join the
# merged stats. Returns {merged pairs, live workers, orphans} where orphans
# are {file, committed length, ...} for files on `host` whose writer died.
CLOSE = (
    _PRELUDE
    + """
local worker, host = ARGV[2], ARGV[3]
requeue_leases(worker)
redis.call('ZREM', P .. 'workers', worker)
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', P .. 'stats', ARGV[i], ARGV[i + 1])
end
local orphans = {}
local owners = redis.call('HGETALL', P .. 'outputs:owner')
for i = 1, #owners, 2 do
  local file, owner = owners[i], owners[i + 1]
  if owner == worker then
    redis.call('HDEL', P .. 'outputs:owner', file)
  elseif not live(owner) and string.sub(file, 1, #host + 1) == host .. ':' then
    orphans[#orphans + 1] = file
    orphans[#orphans + 1] = redis.call('HGET', P .. 'outputs', file) or ''
    redis.call('HDEL', P .. 'outputs:owner', file)
  end
end
local live_workers = redis.call('ZCOUNT', P .. 'workers', now, '+inf')
return {redis.call('HGETALL', P .. 'stats'), live_workers, orphans}
"""
)

# KEYS[1]: P gcra:KEY, KEYS[2]: P pause. ARGV: interval_us, burst, domain,
# mode ('take' | 'check'), and until when the caller knows the domain is
# paused (ms; 0: it knows of no pause).
# GCRA: a request may start at max(now, TAT - burst * T), and taking that
# slot moves TAT to max(TAT, now) + T. The slot is taken at once and the
# wait until it returned (µs): callers queue in the order they asked, and a
# caller that wakes a little late costs no one a slot.
# A domain's pause (a Retry-After, in P pause) holds the schedule: while it
# lasts TAT is at least its end + burst * T, so the first slot after it is
# its end and the next ones follow at the rate, with no burst.
# 'check' takes nothing: it returns how long the pause has still to run (µs,
# 0: none), for a caller that waited for its slot and must not send into a
# pause set meanwhile.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T, burst, domain = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local paused = tonumber(redis.call('HGET', KEYS[2], domain) or '0')
local known = tonumber(ARGV[5])
if known > paused then
  redis.call('HSET', KEYS[2], domain, ARGV[5])
  paused = known
end
local pause_end = paused * 1000
if ARGV[4] == 'check' then
  if pause_end > now then return math.ceil(pause_end - now) end
  return 0
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if pause_end > now and tat < pause_end + burst * T then tat = pause_end + burst * T end
local start = tat - burst * T
if start < now then start = now end
redis.call('SET', KEYS[1], string.format('%.0f', tat + T), 'PX',
           math.ceil((tat + T - now) / 1000) + 1000)
return math.ceil(start - now)
"""

# ARGV: prefix. A crawl's backlog, read at one instant:
# {queued, leased, live workers, seed state ('' | worker | 'done')}.
BACKLOG = (
    _PRELUDE
    + """
return {
  tonumber(redis.call('GET', P .. 'queued') or '0'),
  tonumber(redis.call('GET', P .. 'leased') or '0'),
  redis.call('ZCOUNT', P .. 'workers', now, '+inf'),
  redis.call('GET', P .. 'seed') or '',
}
"""
)

# KEYS[1]: P sess:SESSION. ARGV: ttl_ms, node. The node the crawl holds for
# the session (its idle time restarted), else this one, stored now.
STICK = """
local held = redis.call('GET', KEYS[1])
if held then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return held
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return ARGV[2]
"""
