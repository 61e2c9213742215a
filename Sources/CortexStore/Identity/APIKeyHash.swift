import Crypto

/// How keys are stored: the lowercase hex SHA-256 of the key's UTF-8.
///
/// Keys are long random secrets (about 190 bits for generated ones), so a fast hash is right:
/// there is nothing to brute-force, and lookups stay one index probe per request.
public enum APIKeyHash {
    /// The stored form of a key.
    public static func of(_ key: String) -> String {
        hex(SHA256.hash(data: Array(key.utf8)))
    }

    /// Lowercase hex of a digest.
    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
