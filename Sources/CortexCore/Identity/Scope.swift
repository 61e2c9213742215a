/// What an API key may do.
public enum Scope: String, Sendable, Hashable, CaseIterable, Comparable {
    /// Call models: inference routes, `/me`, `/keys/rotate`.
    case infer
    /// Manage tenants, keys and credits.
    case admin

    /// Parses a comma-separated list such as `"infer,admin"`; `nil` if any name is unknown or the list is empty.
    public static func parseList(_ text: some StringProtocol) -> Set<Scope>? {
        var scopes = Set<Scope>()
        for part in text.split(separator: ",") {
            guard let scope = Scope(rawValue: part.trimmingCharacters(in: " ")) else { return nil }
            scopes.insert(scope)
        }
        return scopes.isEmpty ? nil : scopes
    }

    public static func < (lhs: Scope, rhs: Scope) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
