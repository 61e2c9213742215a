import Crypto

/// The name Redis gives a script: the lowercase hex SHA-1 of its text.
enum RedisScriptHash {
    static func sha1Hex(_ script: String) -> String {
        APIKeyHash.hex(Insecure.SHA1.hash(data: Array(script.utf8)))
    }
}
