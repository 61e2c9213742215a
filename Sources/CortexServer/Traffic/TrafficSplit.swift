/// How an endpoint's requests are shared among its variants (models), by weight.
///
/// Each request is a point in [0, 1): the hash of its session (sticky: the `STICKY_COOKIE` cookie
/// or `X-Session-ID`), else of its request id (unique, so requests spread by weight). The point
/// falls in one variant's share of the line, laid out in order. So:
/// - every replica assigns a session the same way, with no shared state (the hash is fixed:
///   FNV-1a then SplitMix64's finaliser, not Swift's per-process seeded `Hasher`);
/// - changing weights moves only the sessions whose points fall in the shares that changed
///   (from 0.9/0.1 to 0.8/0.2, the sessions in [0.8, 0.9) and no others).
public struct TrafficSplit: Sendable, Equatable {
    /// One variant and its share.
    public struct Variant: Sendable, Equatable {
        public var model: String
        public var weight: Double

        public init(model: String, weight: Double) {
            self.model = model
            self.weight = weight
        }
    }

    /// The variants in order, each with a weight of at least 0; at least one above 0.
    public let variants: [Variant]
    /// Where each variant's share ends on [0, 1).
    private let bounds: [Double]

    /// A split over `variants`; `nil` when no weight is above 0 or one is negative or not finite.
    public init?(_ variants: [Variant]) {
        guard !variants.isEmpty, variants.allSatisfy({ $0.weight >= 0 && $0.weight.isFinite }) else { return nil }
        let total = variants.reduce(0) { $0 + $1.weight }
        guard total > 0 else { return nil }
        self.variants = variants
        var running = 0.0
        bounds = variants.map { variant in
            running += variant.weight / total
            return running
        }
    }

    /// The variant whose share holds `point` (in [0, 1)).
    public func variant(at point: Double) -> String {
        for (index, bound) in bounds.enumerated() where point < bound && variants[index].weight > 0 {
            return variants[index].model
        }
        // Rounding left the last bound just under 1: the last variant with a share.
        return variants.last { $0.weight > 0 }?.model ?? variants[0].model
    }

    /// The variant for a session or request id.
    public func variant(for key: some StringProtocol) -> String {
        variant(at: Self.point(of: key))
    }

    /// A fixed hash of `key` as a point in [0, 1): the same on every replica and release.
    public static func point(of key: some StringProtocol) -> Double {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        // SplitMix64's finaliser spreads FNV's weak low bits over the whole word.
        hash ^= hash >> 30
        hash &*= 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 27
        hash &*= 0x94d0_49bb_1331_11eb
        hash ^= hash >> 31
        return Double(hash >> 11) / Double(UInt64(1) << 53)
    }
}
