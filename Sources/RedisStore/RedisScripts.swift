/// The Lua scripts behind `RedisIdempotencyStore`, for what native commands cannot do
/// atomically: every transition out of `in_flight` compares the owner token first, and a claim
/// that meets an in-flight record decides whether its lease still runs. (The common claim, on a
/// free key or a settled record, is one native `SET … NX PX … GET`.)
///
/// Records are `RecordCodec` bytes. Lua strings are 1-based, so the codec's 0-based offsets
/// shift by one: state is byte 2, the owner bytes 35–50, the lease deadline bytes 51–58, the
/// creation time bytes 59–66 (version 2 records; version 1 ones have none).
///
/// Leases are carried by the key's own expiry: a claim is written with `PX` lease + ttl and
/// its deadline field holds `RecordCodec.leaseByExpiry | ttl`, so the lease runs while the key
/// has more than ttl left (`PTTL`), and no clock is read at all. Records written by earlier
/// versions hold an absolute deadline in Redis `TIME` milliseconds instead; the scripts still
/// read those. An earlier version reading a new claim sees a deadline far in the future, so
/// it answers "in flight" until the key expires: never a second execution.
///
/// Out of memory (`maxmemory` with `noeviction`): the owner's scripts (complete, release, mark
/// unknown, refresh) are declared `allow-oom` (Redis 7 script flags), so an owner that holds a
/// claim can always settle it (the growth is bounded by the claims in flight). A claim is
/// refused: `SET` is a command Redis denies past maxmemory, and `claimContended` declares no
/// such flag, so Redis refuses the whole script before it runs. Either way the answer is an
/// `OOM` error, the store's `.full`, and nothing was written.
///
/// `complete` and `markUnknown` are idempotent for their owner: a write retried because its
/// first reply was lost (timeout, disconnect) finds the record already in the state it asked
/// for, with its own owner token, and reports success rather than a lost lease.
public enum RedisScripts {
    /// The first line of a script an owner runs: it may write past maxmemory (see above).
    private static let ownerFlags = "#!lua flags=allow-oom\n"

    /// Shared helpers prepended to each script.
    private static let prelude = """
    local function now_ms()
      local t = redis.call('TIME')
      return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local function be64(n)
      local s = ''
      for i = 7, 0, -1 do s = s .. string.char(math.floor(n / 2 ^ (8 * i)) % 256) end
      return s
    end
    local function deadline(v)
      local n = 0
      for i = 51, 58 do n = n * 256 + string.byte(v, i) end
      return n
    end
    local function owned(v, owner)
      return v and string.byte(v, 2) == 1 and string.sub(v, 35, 50) == owner
    end
    -- Already moved to `state` by this owner: a retried write whose first reply was lost.
    local function already(v, owner, state)
      return v and string.byte(v, 2) == state and string.sub(v, 35, 50) == owner
    end
    -- A lease carried by the key's expiry (the deadline field's top bit set): the time the key
    -- outlives its lease, in ms; nil for an absolute deadline.
    local function kept_after_lease(v)
      local top = string.byte(v, 51)
      if top < 128 then return nil end
      local n = top - 128
      for i = 52, 58 do n = n * 256 + string.byte(v, i) end
      return n
    end
    -- Whether an in-flight record's lease still runs. A key without expiry (PTTL -1: its TTL
    -- removed behind idemproxy's back) carries a lease that never ends, as `inspect` reads it.
    local function lease_live(key, v)
      local keep = kept_after_lease(v)
      if keep then
        local left = redis.call('PTTL', key)
        return left < 0 or left > keep
      end
      return deadline(v) > now_ms()
    end

    """

    /// The slow path of a claim, after `SET … NX PX … GET` found an in-flight record (see
    /// `RedisIdempotencyStore.claim`). KEYS[1] record; ARGV the new in-flight record, its PX
    /// (lease + ttl) in ms, ttl ms, "hold"|"release". Returns 1 when claimed, otherwise the
    /// existing record's bytes. A record whose lease expired (its owner died) becomes `unknown`
    /// under hold, or is replaced under release. Everything is read again here: the record may
    /// have changed since the `SET` saw it.
    static let claimContended = "#!lua\n" + prelude + """
    local v = redis.call('GET', KEYS[1])
    if v and string.byte(v, 2) ~= 1 then return v end
    if v and lease_live(KEYS[1], v) then return v end
    if v and ARGV[4] == 'hold' then
      v = string.sub(v, 1, 1) .. string.char(3) .. string.sub(v, 3)
      redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
      return v
    end
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
    """

    /// KEYS[1]; ARGV owner, response section (the encoded record from the flags byte on),
    /// ttl ms. Compare-and-set on the owner; the stored fingerprint, owner and creation time
    /// are kept. Written without the prelude: it runs once per request.
    static let complete = ownerFlags + """
    local v = redis.call('GET', KEYS[1])
    if v and string.byte(v, 2) == 2 and string.sub(v, 35, 50) == ARGV[1] then
      -- A retry (a lost reply, or too few replicas acknowledged): write something that
      -- replicates, keeping the TTL, so a WAIT after it covers this record again.
      local left = redis.call('PTTL', KEYS[1])
      if left > 0 then redis.call('PEXPIRE', KEYS[1], left) end
      return 1
    end
    if not (v and string.byte(v, 2) == 1 and string.sub(v, 35, 50) == ARGV[1]) then return 0 end
    -- The creation time stays; a version 1 record (written before it existed) has none.
    local created = string.byte(v, 1) == 2 and string.sub(v, 59, 66) or ''
    redis.call('SET', KEYS[1], string.sub(v, 1, 1) .. string.char(2) .. string.sub(v, 3, 50) .. '\\0\\0\\0\\0\\0\\0\\0\\0' .. created .. ARGV[2], 'PX', ARGV[3])
    return 1
    """

    /// KEYS[1]; ARGV owner. Deletes the claim so the request may be retried.
    static let release = ownerFlags + prelude + """
    if not owned(redis.call('GET', KEYS[1]), ARGV[1]) then return 0 end
    redis.call('DEL', KEYS[1])
    return 1
    """

    /// KEYS[1]; ARGV owner, ttl ms. The request went out but its outcome is unknown.
    static let markUnknown = ownerFlags + prelude + """
    local v = redis.call('GET', KEYS[1])
    if already(v, ARGV[1], 3) then return 1 end
    if not owned(v, ARGV[1]) then return 0 end
    redis.call('SET', KEYS[1], string.sub(v, 1, 1) .. string.char(3) .. string.sub(v, 3), 'PX', ARGV[2])
    return 1
    """

    /// KEYS[1]; ARGV owner, lease ms, ttl ms. Moves the lease deadline to now + lease. A lease
    /// carried by the key's expiry (every claim this version writes) moves by setting the TTL to
    /// lease + the `keep` the claim recorded. A record with an absolute deadline (written by an
    /// earlier version) keeps its TTL unless it would end less than ttl after the new deadline.
    /// Either way a slow request keeps its claim even when it outlasts ttl, and if its owner
    /// dies the record is still there to be held as unknown.
    static let refresh = ownerFlags + prelude + """
    local v = redis.call('GET', KEYS[1])
    if not owned(v, ARGV[1]) then return 0 end
    local keep = kept_after_lease(v)
    if keep then
      redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + keep)
      return 1
    end
    local total = tonumber(ARGV[2]) + tonumber(ARGV[3])
    redis.call('PEXPIRE', KEYS[1], math.max(redis.call('PTTL', KEYS[1]), total))
    v = string.sub(v, 1, 50) .. be64(now_ms() + tonumber(ARGV[2])) .. string.sub(v, 59)
    redis.call('SET', KEYS[1], v, 'KEEPTTL')
    return 1
    """

    /// KEYS[1]. For operators (`/records`, `idemproxy records get`): the record, its remaining
    /// TTL in ms and Redis' clock in ms (to turn the lease deadline into time left), read
    /// atomically; nil when there is no record.
    static let inspect = "#!lua flags=no-writes,allow-oom\n" + prelude + """
    local v = redis.call('GET', KEYS[1])
    if not v then return false end
    return {v, redis.call('PTTL', KEYS[1]), now_ms()}
    """

    /// KEYS[1]. An operator's purge that leaves a live claim alone, decided and deleted in one
    /// step (a retry that claims the key meanwhile keeps its claim): `{1}` deleted, `{0}` no
    /// record, `{2, lease ms left}` in flight with its lease running, left as it is (`-1`: a
    /// lease that never ends, on a key without expiry). Flagged
    /// `allow-oom`: a delete frees memory, and Redis allows `DEL` past maxmemory.
    static let purgeUnlessInFlight = ownerFlags + prelude + """
    local v = redis.call('GET', KEYS[1])
    if not v then return {0} end
    if string.byte(v, 2) == 1 and lease_live(KEYS[1], v) then
      local keep = kept_after_lease(v)
      if not keep then return {2, deadline(v) - now_ms()} end
      local left = redis.call('PTTL', KEYS[1])
      if left < 0 then return {2, -1} end
      return {2, left - keep}
    end
    redis.call('DEL', KEYS[1])
    return {1}
    """

    /// KEYS[1] the purge log stream; ARGV key, approximate length to trim to. Flagged
    /// `allow-oom`: a purge deletes (which Redis allows past maxmemory), and its announcement
    /// must not then be refused, or replicas would keep replaying the purged record.
    static let announcePurge = ownerFlags + """
    return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'key', ARGV[1])
    """

    public static let all = [claimContended, complete, release, markUnknown, refresh, inspect, announcePurge, purgeUnlessInFlight]
}
