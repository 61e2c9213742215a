#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How many connections the process can hold open: each takes a file descriptor, and a process
/// out of descriptors can accept no one (nor open its database), so the cap stays below the limit.
public enum ConnectionCapacity {
    /// `MAX_CONNECTIONS` when it is not set (fewer if the descriptor limit is lower).
    public static let defaultMaximum = 10_000
    /// Descriptors kept for everything but client connections: the database, model files,
    /// provider and Redis connections, logs.
    public static let reserve = 1_024
    /// The least cap used by default, however low the descriptor limit.
    public static let minimum = 64

    /// Raises the process's soft descriptor limit as far as `maxConnections` needs (up to the
    /// hard limit), and returns the cap to use.
    ///
    /// - Parameter explicit: Whether the operator set `MAX_CONNECTIONS`: then a cap the limit
    ///   cannot hold is an error; otherwise the default is lowered to fit.
    /// - Throws: ``ConfigurationError`` naming `MAX_CONNECTIONS` and the limit.
    public static func prepare(maxConnections: Int, explicit: Bool) throws(ConfigurationError) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return maxConnections }
        let needed = rlim_t(maxConnections + reserve)
        if limit.rlim_cur < needed, limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = min(needed, limit.rlim_max)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let available = Int(clamping: limit.rlim_cur) - reserve
        guard available < maxConnections else { return maxConnections }
        if explicit {
            throw ConfigurationError(
                key: "MAX_CONNECTIONS",
                value: String(maxConnections),
                expected:
                    "at most \(max(available, 0)): the process may open \(limit.rlim_cur) files (ulimit -n) and keeps \(reserve) for the database, models and providers; raise the limit or lower MAX_CONNECTIONS"
            )
        }
        return max(minimum, available)
    }
}
