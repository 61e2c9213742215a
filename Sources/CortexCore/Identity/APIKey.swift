/// A generated API key: `ctx_<prefix>_<secret>`, both parts base62.
///
/// The prefix (8 characters) is stored in the clear to show which key is which; the whole key
/// is shown to its owner exactly once and stored only as a hash. 32 base62 characters of secret
/// carry about 190 bits, so a fast hash is enough (no password-style stretching needed).
public struct APIKey: Sendable, Hashable {
    /// The fixed lead of every generated key.
    public static let scheme = "ctx"
    /// Characters in the prefix.
    public static let prefixLength = 8
    /// Characters in the secret.
    public static let secretLength = 32

    /// The display prefix, e.g. `ctx_3fK9aQ2m`.
    public let displayPrefix: String
    /// The complete key a client sends.
    public let text: String

    /// Generates a new key from a cryptographically secure generator.
    public static func generate<G: RandomNumberGenerator>(using generator: inout G) -> APIKey {
        let prefix = randomBase62(count: prefixLength, using: &generator)
        let secret = randomBase62(count: secretLength, using: &generator)
        return APIKey(displayPrefix: "\(scheme)_\(prefix)", text: "\(scheme)_\(prefix)_\(secret)")
    }

    /// Generates a new key from the system's secure random source.
    public static func generate() -> APIKey {
        var generator = SystemRandomNumberGenerator()
        return generate(using: &generator)
    }

    /// The prefix to display for any presented key: the `ctx_XXXXXXXX` part of a generated key,
    /// or the first 6 characters of a key from elsewhere (such as the lead-scoring API's `API_KEYS`).
    public static func displayPrefix(of key: String) -> String {
        let parts = key.split(separator: "_", omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == scheme, parts[1].count == prefixLength, parts[2].count == secretLength {
            return "\(parts[0])_\(parts[1])"
        }
        return String(key.prefix(6))
    }

    /// Whether a presented key is acceptable to look up: 8 to 256 printable ASCII characters.
    /// Anything else is refused before hashing, so it never reaches the database or the log.
    public static func isPlausible(_ key: Substring) -> Bool {
        (8...256).contains(key.utf8.count) && key.utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }

    private static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    private static func randomBase62<G: RandomNumberGenerator>(count: Int, using generator: inout G) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        while bytes.count < count {
            // Rejection sampling keeps every character equally likely: 248 = 4 × 62.
            let value = UInt8.random(in: 0...UInt8.max, using: &generator)
            if value < 248 { bytes.append(alphabet[Int(value % 62)]) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Comparisons whose duration does not depend on where the inputs differ.
public enum ConstantTime {
    /// Whether two byte sequences are equal, examining every byte of the longer regardless of
    /// mismatches (only the lengths, which are not secret here, can shorten it).
    public static func equals(_ lhs: some Collection<UInt8>, _ rhs: some Collection<UInt8>) -> Bool {
        var difference: UInt8 = lhs.count == rhs.count ? 0 : 1
        var left = lhs.makeIterator()
        var right = rhs.makeIterator()
        for _ in 0..<max(lhs.count, rhs.count) {
            difference |= (left.next() ?? 0) ^ (right.next() ?? 0)
        }
        return difference == 0
    }

    /// Whether two strings have equal UTF-8 bytes, in constant time for equal lengths.
    public static func equals(_ lhs: String, _ rhs: String) -> Bool {
        equals(Array(lhs.utf8), Array(rhs.utf8))
    }
}
