#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Takes the configured secrets (provider keys, the admin token, static API keys, passwords in
/// URLs) out of text before it leaves the process: error bodies relayed from a provider, log lines.
///
/// A provider that echoes the request's `Authorization` header in its error text would otherwise
/// hand its key to the tenant and to the logs.
///
/// ```swift
/// let redactor = SecretRedactor(secrets: ["sk-live-0123456789"])
/// redactor.redact("bad header: Bearer sk-live-0123456789")   // "bad header: Bearer [redacted]"
/// ```
public struct SecretRedactor: Sendable, Hashable {
    /// What a secret is replaced with.
    public static let replacement = "[redacted]"
    /// Secrets shorter than this are not searched for: they would match ordinary words. Keys and
    /// tokens Cortex accepts are longer (the admin token has at least 16 characters).
    public static let minimumLength = 8

    private let secrets: [String]
    private let secretBytes: [[UInt8]]

    /// A redactor for `secrets`; empty and short ones are ignored, longer ones are replaced first
    /// (so a secret that contains another is removed whole).
    public init(secrets: some Sequence<String>) {
        let kept = Set(secrets.filter { $0.utf8.count >= Self.minimumLength }).sorted { $0.utf8.count > $1.utf8.count }
        self.secrets = kept
        self.secretBytes = kept.map { Array($0.utf8) }
    }

    /// Whether there is nothing to redact.
    public var isEmpty: Bool { secrets.isEmpty }

    /// `text` with every secret replaced by ``replacement``.
    public func redact(_ text: String) -> String {
        var text = text
        for secret in secrets where text.contains(secret) {
            text = text.replacing(secret, with: Self.replacement)
        }
        return text
    }

    /// `bytes` (UTF-8 text) with every secret replaced by ``replacement``.
    ///
    /// Every log line goes through this: the search runs on libc's `memchr`, and a line without a
    /// secret (nearly all of them) is returned as it came.
    public func redact(_ bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        for secret in secretBytes where Self.contains(bytes, secret) {
            bytes = bytes.replacing(secret, with: Array(Self.replacement.utf8))
        }
        return bytes
    }

    /// Whether `needle` occurs in `bytes`: `memchr` for each candidate first byte, `memcmp` for the rest.
    private static func contains(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, bytes.count >= needle.count else { return false }
        return bytes.withUnsafeBytes { haystack in
            needle.withUnsafeBytes { needle in
                guard let base = haystack.baseAddress, let wanted = needle.baseAddress else { return false }
                var offset = 0
                let last = haystack.count - needle.count
                while offset <= last {
                    guard let found = memchr(base + offset, Int32(first), last - offset + 1) else { return false }
                    let position = base.distance(to: UnsafeRawPointer(found))
                    if memcmp(base + position, wanted, needle.count) == 0 { return true }
                    offset = position + 1
                }
                return false
            }
        }
    }
}
