public import Foundation

/// A customer of the API: owns keys and, through the ledger, a balance.
public struct Tenant: Sendable, Hashable, Codable {
    /// Database identifier.
    public var id: Int64
    /// Unique name, e.g. `acme`.
    public var name: String
    /// When it was created.
    public var createdAt: Date

    /// Creates a tenant value.
    public init(id: Int64, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }

    /// Whether a name is acceptable: 1–64 characters of letters, digits, `-`, `_`, `.`.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.count)
            && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_.".unicodeScalars.contains($0) }
    }
}
