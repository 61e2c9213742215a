public import CortexCore

/// GCRA evaluated inside Redis, so every replica spends one shared budget per key.
///
/// One atomic script per decision: it reads the key's TAT, decides with Redis's own clock (so
/// replicas with skewed clocks agree), and stores the new TAT with an expiry once the bucket
/// would be full again. The script is loaded once and then called by its SHA.
public struct RedisRateLimit: Sendable {
    let client: RedisClient
    /// Prefix of every key Cortex writes.
    let prefix: String

    /// A limiter on `client`.
    public init(client: RedisClient, prefix: String = "cortex:rl:") {
        self.client = client
        self.prefix = prefix
    }

    /// Times in microseconds (Lua numbers are doubles: exact well past the year 2200). `ARGV[3]` is
    /// the cost, `ARGV[4]` `1` to spend even when refused (as ``GCRA/decide(now:tat:cost:force:)``).
    static let script = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local cost = tonumber(ARGV[3])
        local force = ARGV[4] == '1'
        local tat = tonumber(redis.call('GET', KEYS[1])) or now
        if tat < now then tat = now end
        local nxt = tat + interval * cost
        local allowed_at = nxt - interval * burst
        local allowed = now >= allowed_at
        if not allowed and not force then
          return {0, 0, allowed_at - now, tat - now}
        end
        if nxt > now then
          redis.call('SET', KEYS[1], nxt, 'PX', math.ceil((nxt - now) / 1000) + 1000)
        end
        local retry = 0
        if not allowed then retry = allowed_at - now end
        return {allowed and 1 or 0, math.max(0, math.floor((now - allowed_at) / interval)), retry, nxt - now}
        """

    /// A reply that does not fit the script.
    public struct UnexpectedReply: Error, CustomStringConvertible {
        public var description: String
    }

    /// Closes the connection to Redis.
    public func close() async {
        await client.close()
    }

    /// Checks that Redis answers `PING`.
    ///
    /// - Throws: ``RedisError`` or ``UnexpectedReply``.
    public func ping() async throws {
        let reply = try await client.send(["PING"])
        guard reply == .simpleString("PONG") else { throw UnexpectedReply(description: "PING answered \(reply)") }
    }

    /// Decides one request for `key` under `limit`, spending `cost` (even when refused, with `force`).
    ///
    /// - Throws: ``RedisError`` when Redis is unreachable or slow, ``UnexpectedReply`` otherwise;
    ///   the caller falls back to its local limiter.
    public func decide(key: String, limit: GCRA, cost: Int = 1, force: Bool = false) async throws -> GCRA.Decision {
        let interval = String(max(limit.emissionInterval / 1000, 1))
        let arguments = ["1", prefix + key, interval, String(limit.burst), String(max(cost, 0)), force ? "1" : "0"]
        var reply = try await client.send(["EVALSHA", Self.sha] + arguments)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            reply = try await client.send(["EVAL", Self.script] + arguments)
        }
        guard case .array(let values?) = reply, values.count == 4, case .integer(let allowed) = values[0],
            case .integer(let remaining) = values[1], case .integer(let retry) = values[2], case .integer(let reset) = values[3]
        else {
            throw UnexpectedReply(description: "rate-limit script answered \(reply)")
        }
        return GCRA.Decision(
            allowed: allowed == 1,
            tat: 0,
            remaining: Int(remaining),
            retryAfter: retry * 1000,
            resetAfter: reset * 1000
        )
    }

    /// The script's SHA-1, as Redis names loaded scripts (`EVAL` loads it on first use).
    static let sha = RedisScriptHash.sha1Hex(script)
}
