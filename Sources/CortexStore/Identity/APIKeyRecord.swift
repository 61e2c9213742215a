public import CortexCore
public import Foundation

/// What the store keeps about an API key: never the key itself, only its hash.
public struct APIKeyRecord: Sendable, Hashable {
    /// Where a key came from.
    public enum Source: String, Sendable, Hashable {
        /// Made by Cortex (`cortex keys create`, the admin API, rotation); shown once.
        case generated
        /// Seeded from the `API_KEYS` environment variable or the demo setup.
        case environment
    }

    /// Database identifier.
    public var id: Int64
    /// The owning tenant.
    public var tenantID: Int64
    /// Shown to operators to tell keys apart, e.g. `ctx_3fK9aQ2m`.
    public var displayPrefix: String
    /// What the key may do.
    public var scopes: Set<Scope>
    /// Where it came from.
    public var source: Source
    /// When it was created.
    public var createdAt: Date
    /// When it stops working, if ever.
    public var expiresAt: Date?
    /// When it was revoked, if it was.
    public var revokedAt: Date?

    /// Creates a record value.
    public init(
        id: Int64,
        tenantID: Int64,
        displayPrefix: String,
        scopes: Set<Scope>,
        source: Source,
        createdAt: Date,
        expiresAt: Date?,
        revokedAt: Date?
    ) {
        self.id = id
        self.tenantID = tenantID
        self.displayPrefix = displayPrefix
        self.scopes = scopes
        self.source = source
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }

    /// Whether the key works at `time`: not revoked by then and not expired.
    public func isActive(at time: Date) -> Bool {
        if let revokedAt, revokedAt <= time { return false }
        if let expiresAt, expiresAt <= time { return false }
        return true
    }
}

/// A key just issued: the record and the full key text, which is shown exactly once.
public struct IssuedAPIKey: Sendable {
    /// What is stored.
    public var record: APIKeyRecord
    /// The key to hand to its owner; not stored anywhere.
    public var key: String
}
