/// The identifier that follows one request through headers, logs and errors.
public enum RequestID {
    /// Longest client-supplied request id that is accepted as-is.
    public static let maximumLength = 128

    /// Returns `candidate` when it is sane to echo and log: 1–128 characters of
    /// `A–Z a–z 0–9 - _ . : /` (which covers UUIDs, ULIDs and W3C trace ids); otherwise `nil`.
    public static func sanitized(_ candidate: Substring) -> String? {
        guard !candidate.isEmpty, candidate.utf8.count <= maximumLength else { return nil }
        for byte in candidate.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: ":"), UInt8(ascii: "/"):
                continue
            default:
                return nil
            }
        }
        return String(candidate)
    }

    /// A new random id: 32 lowercase hex characters (128 bits), the W3C trace-id form.
    public static func generate<G: RandomNumberGenerator>(using generator: inout G) -> String {
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        return hex(high) + hex(low)
    }

    /// A new random id from the system generator.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return generate(using: &generator)
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes = [UInt8](repeating: 0, count: 16)
        var remaining = value
        for index in stride(from: 15, through: 0, by: -1) {
            bytes[index] = digits[Int(remaining & 0xF)]
            remaining >>= 4
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
