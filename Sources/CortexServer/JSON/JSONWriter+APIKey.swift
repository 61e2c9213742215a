import CortexCore
import CortexStore

extension JSONWriter {
    /// Writes an API key's public fields (never the key): id, prefix, scopes, source, state, times.
    mutating func keyFields(_ key: APIKeyRecord, active: Bool) {
        member("id", Int(key.id))
        member("key_prefix", key.displayPrefix)
        self.key("scopes")
        beginArray()
        for scope in key.scopes.sorted() { string(scope.rawValue) }
        endArray()
        member("source", key.source.rawValue)
        member("active", active)
        self.key("expires_at")
        if let expires = key.expiresAt { string(expires.ISO8601Format()) } else { null() }
        self.key("revoked_at")
        if let revoked = key.revokedAt { string(revoked.ISO8601Format()) } else { null() }
    }
}
