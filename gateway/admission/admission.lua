-- Admission and settlement in one atomic step each: check every limit, then write all of them.
--
-- Every key is built from KEYS[1], the team's hash tag "{t:<team>}", so one script touches one
-- Redis Cluster slot. Time is Redis's own (TIME), unless a test passes now_ms.
--
-- Rate limits are token buckets in exact integer arithmetic: a bucket of L per minute holds
-- L * 60000 "units"; it refills L units per millisecond; a cost of c takes c * 60000 units.
-- (A float GCRA drifts: after N admissions at one instant the N-th can be refused.) Values stay
-- below 2^53 for L up to 10^10 per minute, so Lua's doubles are exact.
--
-- admit  ARGV: "admit", hold_id, now_ms|"", hold_ttl_ms, n_buckets, n_weekly, budget|-1,
--              reserve, est_tokens, label, then (limit, cost) per bucket, then cap per weekly
--        KEYS: base, bucket keys..., weekly prefixes...
--        ->  {status, refused_index, wait_ms, spend, held, remaining_1, reset_1, ...}
--            status 1 admitted, 0 refused, 2 replay of an admitted hold_id (nothing written)
-- settle ARGV: "settle", hold_id, now_ms|"", cost, actual_tokens, release_weekly, n_buckets,
--              label, prompt, completion, cached, reasoning, then limit per token bucket, then
--              optionally first_ms: when an earlier try that may have run was sent, of a hold
--              this script admitted
--        KEYS: base, token bucket keys...
--        ->  {status, charged}: 1 settled, 2 replay (already settled), -1 unknown hold (charged
--            to the current month, and marked settled so a late admit of it writes nothing)
--
-- A label is what a request's usage is filed under: "<model>\t<endpoint>\t<key id>", made by the
-- gateway (usage_breakdown.py); the month's usage hash counts "<kind>:<label>". The hold keeps
-- its admit's label, so that an expired hold's reserve and the settle that corrects it land on
-- one row.
--
-- It runs twice per request, and most of its cost is not its commands' own work but getting to
-- them: each redis.call, each tonumber of a string, each number Redis formats as an argument.
-- Hence arguments parsed once, fixed expiries and reused numbers passed as text, one MGET for
-- the admit's counters, and one PEXPIRE for a request's usage counters rather than one each.

local PERIOD = 60000
local WEEK = 604800000
local DAY = 86400000
-- Text, not numbers: Redis formats a number argument with "%.17g" on every call.
local KEEP = "8640000000" -- 100 days: spend and usage history outlive their month
-- An open hold lives as long as the counters that include its reserve, so it is swept (charged)
-- by the team's next call however late that comes. A settled hold is kept only long enough to
-- recognise a retried settle or admit; an expired one as long as the spend its reserve was
-- charged to: a job the gateway follows (a fine-tuning job, which has no time limit) may end,
-- and be settled, long after its hold expired, and that settle corrects the reserve, where one
-- finding no hold would charge its cost on top of it.
local SETTLED_MEMORY = "600000"
-- A try sent again this long after one that may have run may find the hold forgotten
-- (SETTLED_MEMORY, less a minute for the gateway's clock against Redis's).
local FORGOTTEN_AFTER = 540000

local mode = ARGV[1]
local base = KEYS[1]

-- Every argument as a number (nil where it is none), each parsed once. Copied from ARGV first so
-- that the table is sized once: one grown key by key is rehashed at every power of two.
local num = {unpack(ARGV)}
for i = 1, #num do num[i] = tonumber(num[i]) end

local function now_ms()
  if ARGV[3] ~= "" then return num[3] end
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Validate every argument before the first write: an error mid-script keeps earlier writes.
local function check_numbers(first, last)
  for i = first, last do
    if num[i] == nil then
      error("admission.lua: ARGV[" .. i .. "] is not a number: " .. tostring(ARGV[i]))
    end
  end
end
-- A count Redis can add: INCRBY and HINCRBY take the text Redis formats a number as ("%.17g"),
-- which from 1e17 on is no integer, and a double is exact only to 2^53.
local function check_counts(first, last)
  for i = first, last do
    local n = num[i]
    if n % 1 ~= 0 or n < -9007199254740992 or n > 9007199254740992 then
      error("admission.lua: ARGV[" .. i .. "] is no count Redis can add: " .. ARGV[i])
    end
  end
end
if mode == "admit" then
  check_numbers(4, 9)
  check_numbers(11, 10 + 2 * num[5] + num[6])
elseif mode == "settle" then
  check_numbers(4, 5)
  check_numbers(7, 7)
  check_numbers(9, 12 + num[7])
  check_counts(4, 5)
  check_counts(9, 12)
else
  return redis.error_reply("admission.lua: unknown mode " .. tostring(mode))
end
if ARGV[3] ~= "" then check_numbers(3, 3) end

local now = now_ms()

-- A number as Redis would format it as an argument ("%.17g"), for one that goes into several
-- commands. An integer prints the same with "%d", which costs less than half as much.
local function text(n)
  if n % 1 == 0 and n > 0 and n < 1e15 then return string.format("%d", n) end
  return string.format("%.17g", n)
end
local now_text = text(now)

-- Calendar month of a Unix time in UTC (Howard Hinnant's civil_from_days).
local function month_of(ms)
  local z = math.floor(ms / DAY) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format("%04d-%02d", y, m)
end

-- Weeks start on Monday 00:00 UTC; the Unix epoch was a Thursday.
local function week_of(ms)
  return math.floor((ms + 3 * DAY) / WEEK)
end

local function bucket_level(key, limit)
  local state = redis.call("HMGET", key, "l", "t")
  local capacity = limit * PERIOD
  if not state[1] then return capacity end
  local level = tonumber(state[1]) + (now - tonumber(state[2])) * limit
  if level > capacity then level = capacity end
  return level
end

local function write_bucket(key, limit, level)
  redis.call("HSET", key, "l", level, "t", now_text)
  -- A full bucket is the same as no key: expire once it would have refilled.
  local to_full = math.ceil((limit * PERIOD - level) / limit)
  redis.call("PEXPIRE", key, math.max(to_full, 0) + 1000)
end

local function add(key, amount)
  if amount ~= 0 then redis.call("INCRBY", key, amount) end
  redis.call("PEXPIRE", key, KEEP)
end

-- counts: field, amount, field, amount... One PEXPIRE serves them all; it comes right after the
-- first write, so that a later HINCRBY failing (a fractional count) leaves no hash without one.
local function count_usage(month, counts)
  local key = base .. ":usage:" .. month
  local expires = true
  for i = 1, #counts, 2 do
    if counts[i + 1] ~= 0 then
      redis.call("HINCRBY", key, counts[i], counts[i + 1])
      if expires then
        redis.call("PEXPIRE", key, KEEP)
        expires = false
      end
    end
  end
  if expires then redis.call("PEXPIRE", key, KEEP) end
end

-- Holds whose gateway never settled them are charged at their reserve: never under-count.
local function sweep_expired()
  local expired =
    redis.call("ZRANGEBYSCORE", base .. ":holds", "-inf", now_text, "LIMIT", "0", "32")
  for _, id in ipairs(expired) do
    local hold = base .. ":hold:" .. id
    local h = redis.call("HMGET", hold, "s", "r", "m", "md")
    if h[1] == "open" then
      local reserve = tonumber(h[2])
      add(base .. ":spend:" .. h[3], reserve)
      add(base .. ":held:" .. h[3], -reserve)
      count_usage(h[3], {"cost:" .. h[4], reserve, "expired:" .. h[4], 1})
      redis.call("HSET", hold, "s", "expired")
      redis.call("PEXPIRE", hold, KEEP)
    end
    redis.call("ZREM", base .. ":holds", id)
  end
end

sweep_expired()

if mode == "admit" then
  local hold_id = ARGV[2]
  local hold_ttl = num[4]
  local nb = num[5]
  local nw = num[6]
  local budget = num[7]
  local reserve = num[8]
  local est_tokens = num[9]
  local label = ARGV[10]
  local month = month_of(now)
  local spend_key = base .. ":spend:" .. month
  local held_key = base .. ":held:" .. month
  local week = week_of(now)
  local week_end = (week + 1) * WEEK - 3 * DAY
  local read = {spend_key, held_key}
  for j = 1, nw do read[2 + j] = KEYS[1 + nb + j] .. ":" .. week end
  local values = redis.call("MGET", unpack(read))
  local spend = tonumber(values[1] or "0")
  local held = tonumber(values[2] or "0")
  local hold = base .. ":hold:" .. hold_id
  local replay = redis.call("EXISTS", hold) == 1

  local refused, wait = 0, 0
  local levels, out = {}, {}
  for i = 1, nb do
    local limit = num[10 + 2 * i - 1]
    local cost = num[10 + 2 * i] * PERIOD
    local level = bucket_level(KEYS[1 + i], limit)
    levels[i] = level
    if not replay and level < cost and refused == 0 then
      refused = i
      -- A cost above the whole bucket can never pass: say so with -1.
      if cost > limit * PERIOD then wait = -1 else wait = math.ceil((cost - level) / limit) end
    end
  end
  local counts = {}
  for j = 1, nw do
    local cap = num[10 + 2 * nb + j]
    local count = tonumber(values[2 + j] or "0")
    counts[j] = count
    if not replay and count + 1 > cap and refused == 0 then
      refused = nb + j
      wait = week_end - now
    end
  end
  -- Refused when the worst case does not fit, or when nothing at all is left.
  if not replay and refused == 0 and budget >= 0 and (spend + held + reserve > budget or spend + held >= budget) then
    refused = nb + nw + 1
    wait = -1
  end

  local admitted = refused == 0 and not replay
  if admitted then
    for i = 1, nb do
      local limit = num[10 + 2 * i - 1]
      levels[i] = levels[i] - num[10 + 2 * i] * PERIOD
      write_bucket(KEYS[1 + i], limit, levels[i])
    end
    local weekly_keys = {}
    for j = 1, nw do
      local key = read[2 + j]
      redis.call("INCR", key)
      redis.call("PEXPIREAT", key, week_end + DAY)
      counts[j] = counts[j] + 1
      weekly_keys[j] = key
    end
    -- The month's held counter keeps the expiry it got when created here (every settle renews
    -- it): one call fewer on the request's path. MGET read it, so "created here" is known.
    if reserve ~= 0 then redis.call("INCRBY", held_key, reserve) end
    if not values[2] then redis.call("PEXPIRE", held_key, KEEP) end
    held = held + reserve
    local expires = text(now + hold_ttl)
    redis.call("HSET", hold, "s", "open", "r", reserve, "m", month, "md", label,
      "e", est_tokens, "w", table.concat(weekly_keys, " "), "x", expires)
    redis.call("PEXPIRE", hold, KEEP)
    redis.call("ZADD", base .. ":holds", expires, hold_id)
    redis.call("PEXPIRE", base .. ":holds", KEEP)
  end

  local status = 0
  if replay then status = 2 elseif admitted then status = 1 end
  out = {status, refused, wait, spend, held}
  for i = 1, nb do
    local limit = num[10 + 2 * i - 1]
    local level = levels[i]
    out[#out + 1] = math.max(math.floor(level / PERIOD), 0)
    out[#out + 1] = math.ceil((limit * PERIOD - level) / limit)
  end
  for j = 1, nw do
    local cap = num[10 + 2 * nb + j]
    out[#out + 1] = math.max(cap - counts[j], 0)
    out[#out + 1] = week_end - now
  end
  return out
end

if mode == "settle" then
  local hold = base .. ":hold:" .. ARGV[2]
  local cost = num[4]
  local actual_tokens = num[5]
  local release_weekly = ARGV[6] == "1"
  local nb = num[7]
  -- A request's usage counters, in the order they are bumped.
  local function request_counts(label, charged)
    return {"cost:" .. label, charged, "requests:" .. label, 1, "prompt:" .. label, num[9],
      "completion:" .. label, num[10], "cached:" .. label, num[11], "reasoning:" .. label, num[12]}
  end
  local h = redis.call("HMGET", hold, "s", "r", "m", "e", "w", "c")
  local first = tonumber(ARGV[13 + nb] or "")
  if not h[1] and first and now - first >= FORGOTTEN_AFTER then
    -- A hold this script admitted, which an open or expired hold's record outlives: gone this
    -- long after an earlier try of this very settle may have run (its reply lost), it was
    -- that try that settled it, and its settled record has expired since (Redis was away
    -- longer than SETTLED_MEMORY). Charging it as unknown would charge it twice. Sooner, the
    -- record would still be here: gone, the hold was lost (a failover, a crash), and is
    -- charged as unknown.
    return {2, 0}
  end
  if not h[1] then
    -- Unknown: the admit never landed (its reply was lost and the request ran on the fallback
    -- limiter, or it was refused). Charge what ran to this month, and leave a settled marker
    -- so that admit, should it still arrive, is a replay that writes nothing.
    local month = month_of(now)
    add(base .. ":spend:" .. month, cost)
    if cost > 0 then
      count_usage(month, request_counts(ARGV[8], cost))
    else
      count_usage(month, {"cost:" .. ARGV[8], cost})
    end
    redis.call("HSET", hold, "s", "settled", "c", cost)
    redis.call("PEXPIRE", hold, SETTLED_MEMORY)
    return {-1, cost}
  end
  if h[1] == "settled" then return {2, tonumber(h[6])} end
  local reserve = tonumber(h[2])
  local month = h[3]
  if h[1] == "open" then
    add(base .. ":held:" .. month, -reserve)
    redis.call("ZREM", base .. ":holds", ARGV[2])
    -- Token limits were charged an estimate; move them to what was really used.
    local delta = (actual_tokens - tonumber(h[4])) * PERIOD
    for i = 1, nb do
      local limit = num[12 + i]
      write_bucket(KEYS[1 + i], limit, math.min(bucket_level(KEYS[1 + i], limit) - delta, limit * PERIOD))
    end
    if release_weekly and h[5] ~= "" then
      for key in string.gmatch(h[5], "%S+") do
        if tonumber(redis.call("GET", key) or "0") > 0 then redis.call("DECR", key) end
      end
    end
    add(base .. ":spend:" .. month, cost)
    count_usage(month, request_counts(ARGV[8], cost))
  else
    -- Expired: the reserve was charged already, under the admit's label; correct it there.
    add(base .. ":spend:" .. month, cost - reserve)
    count_usage(month, request_counts(redis.call("HGET", hold, "md") or ARGV[8], cost - reserve))
  end
  redis.call("HSET", hold, "s", "settled", "c", cost)
  redis.call("PEXPIRE", hold, SETTLED_MEMORY)
  return {1, cost}
end
