import Synchronization

/// Makes request ids without a system call per request.
///
/// Each id is 128 bits in the W3C trace-id form. The first 64 bits count up from a random start
/// chosen once per process, so one process's ids sort in the order they were made: the ledger's
/// unique index on request ids then grows at one end (a batch's entries share a page or two),
/// where scattered ids dirtied a page of the index per entry, each written to the WAL on every
/// commit (and, on PostgreSQL, in full after each checkpoint). The last 64 bits are the counter
/// passed through the SplitMix64 finaliser (a bijection, so ids never repeat within a process),
/// which keeps them scattered where trace samplers read their randomness (W3C: the rightmost
/// bytes). Random starts keep replicas apart. Ids are not secrets and need no cryptographic
/// randomness; the system generator costs a `getrandom` call each time.
public final class RequestIDGenerator: Sendable {
    private let prefix: UInt64
    private let offset: UInt64
    private let counter = Atomic<UInt64>(0)

    /// Creates a generator seeded from `seed` (the system generator by default).
    public init<G: RandomNumberGenerator>(seed generator: inout G) {
        prefix = generator.next()
        offset = generator.next()
    }

    /// Creates a generator seeded from the system's random source.
    public convenience init() {
        var system = SystemRandomNumberGenerator()
        self.init(seed: &system)
    }

    /// The next id: 32 lowercase hex characters.
    public func next() -> String {
        let count = counter.wrappingAdd(1, ordering: .relaxed).newValue
        return RequestID.format(high: prefix &+ count, low: Self.mix(count &+ offset))
    }

    /// SplitMix64's output function: a bijection on 64-bit values that scatters consecutive inputs.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
