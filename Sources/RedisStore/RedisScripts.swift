/// The Lua scripts behind `RedisIdempotencyStore`. Each runs atomically in Redis, so a claim
/// is one round trip that either creates the record or returns the existing one, and every
/// transition out of `in_flight` compares the owner token first.
///
/// Records are `RecordCodec` bytes. Lua strings are 1-based, so the codec's 0-based offsets
/// shift by one: state is byte 2, the owner bytes 35–50, the lease deadline bytes 51–58, the
/// creation time bytes 59–66 (version 2 records; version 1 ones have none).
/// Lease deadlines come from Redis `TIME`, the one clock every replica shares.
///
/// Out of memory (`maxmemory` with `noeviction`): Redis refuses a script without flags at its
/// first write of a command that may grow memory (`SET`), and lets the rest of the script run
/// once a write has happened. The owner's writes (complete, mark unknown, refresh) therefore
/// start with `PEXPIRE`, which is not refused: an owner that already holds a claim can always
/// settle it (the growth is bounded by the claims in flight), while new claims, whose first
/// write is `SET`, are refused and answered `503 store-full`. (Script flags such as
/// `allow-oom` would need Redis 7; this works from Redis 6.)
///
/// `complete` and `markUnknown` are idempotent for their owner: a write retried because its
/// first reply was lost (timeout, disconnect) finds the record already in the state it asked
/// for, with its own owner token, and reports success rather than a lost lease.
public enum RedisScripts {
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

    """

    /// KEYS[1] record; ARGV owner, fingerprint, lease ms, ttl ms, "hold"|"release".
    /// Returns 1 when claimed, otherwise the existing record's bytes. An in-flight record whose
    /// lease expired (its owner died) becomes `unknown` under hold, or is replaced under release.
    static let claim = prelude + """
    local v = redis.call('GET', KEYS[1])
    -- Completed and unknown records are returned as they are: a replay costs one GET.
    if v and string.byte(v, 2) ~= 1 then return v end
    local now = now_ms()
    if v then
      if deadline(v) > now then return v end
      if ARGV[5] == 'hold' then
        v = string.sub(v, 1, 1) .. string.char(3) .. string.sub(v, 3)
        redis.call('SET', KEYS[1], v, 'PX', ARGV[4])
        return v
      end
    end
    -- Version 2, in flight, fingerprint, owner, lease deadline, created at, no response.
    local record = string.char(2, 1) .. ARGV[2] .. ARGV[1] .. be64(now + tonumber(ARGV[3])) .. be64(now) .. string.char(0, 0, 0)
    -- The record outlives its lease deadline by ttl: never gone before it, and a dead owner's
    -- claim is still there for the next claim to hold as unknown.
    redis.call('SET', KEYS[1], record, 'PX', tonumber(ARGV[3]) + tonumber(ARGV[4]))
    return 1
    """

    /// KEYS[1]; ARGV owner, response section (the encoded record from the flags byte on),
    /// ttl ms. Compare-and-set on the owner; the stored fingerprint and owner are kept.
    static let complete = prelude + """
    local v = redis.call('GET', KEYS[1])
    if already(v, ARGV[1], 2) then
      -- A retry (a lost reply, or too few replicas acknowledged): write something that
      -- replicates, keeping the TTL, so a WAIT after it covers this record again.
      local left = redis.call('PTTL', KEYS[1])
      if left > 0 then redis.call('PEXPIRE', KEYS[1], left) end
      return 1
    end
    if not owned(v, ARGV[1]) then return 0 end
    redis.call('PEXPIRE', KEYS[1], ARGV[3])  -- first write: not refused under OOM (see above)
    -- The creation time stays; a version 1 record (written before it existed) has none.
    local created = string.byte(v, 1) == 2 and string.sub(v, 59, 66) or ''
    local record = string.sub(v, 1, 1) .. string.char(2) .. string.sub(v, 3, 50) .. be64(0) .. created .. ARGV[2]
    redis.call('SET', KEYS[1], record, 'PX', ARGV[3])
    return 1
    """

    /// KEYS[1]; ARGV owner. Deletes the claim so the request may be retried.
    static let release = prelude + """
    if not owned(redis.call('GET', KEYS[1]), ARGV[1]) then return 0 end
    redis.call('DEL', KEYS[1])
    return 1
    """

    /// KEYS[1]; ARGV owner, ttl ms. The request went out but its outcome is unknown.
    static let markUnknown = prelude + """
    local v = redis.call('GET', KEYS[1])
    if already(v, ARGV[1], 3) then return 1 end
    if not owned(v, ARGV[1]) then return 0 end
    redis.call('PEXPIRE', KEYS[1], ARGV[2])  -- first write: not refused under OOM (see above)
    redis.call('SET', KEYS[1], string.sub(v, 1, 1) .. string.char(3) .. string.sub(v, 3), 'PX', ARGV[2])
    return 1
    """

    /// KEYS[1]; ARGV owner, lease ms, ttl ms. Moves the lease deadline and keeps the key's TTL
    /// unless it would end less than ttl after the new deadline: then the key lives until
    /// deadline + ttl, so a slow request keeps its claim even when it outlasts ttl, and if its
    /// owner dies the record is still there to be held as unknown.
    static let refresh = prelude + """
    local v = redis.call('GET', KEYS[1])
    if not owned(v, ARGV[1]) then return 0 end
    -- The first write, and not refused under OOM (see above): the key lives on for at least
    -- the new lease plus ttl, or keeps its longer TTL.
    local keep = tonumber(ARGV[2]) + tonumber(ARGV[3])
    redis.call('PEXPIRE', KEYS[1], math.max(redis.call('PTTL', KEYS[1]), keep))
    v = string.sub(v, 1, 50) .. be64(now_ms() + tonumber(ARGV[2])) .. string.sub(v, 59)
    redis.call('SET', KEYS[1], v, 'KEEPTTL')
    return 1
    """

    /// KEYS[1]. For operators (`/records`, `idemproxy records get`): the record, its remaining
    /// TTL in ms and Redis' clock in ms (to turn the lease deadline into time left), read
    /// atomically; nil when there is no record.
    static let inspect = prelude + """
    local v = redis.call('GET', KEYS[1])
    if not v then return false end
    return {v, redis.call('PTTL', KEYS[1]), now_ms()}
    """

    public static let all = [claim, complete, release, markUnknown, refresh, inspect]
}
