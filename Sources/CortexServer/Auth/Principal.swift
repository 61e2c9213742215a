public import CortexStore

/// Who is calling: the tenant and the key it presented.
public struct Principal: Sendable, Hashable {
    /// The tenant the key belongs to.
    public var tenant: Tenant
    /// The key's record (never the key itself).
    public var key: APIKeyRecord
}
