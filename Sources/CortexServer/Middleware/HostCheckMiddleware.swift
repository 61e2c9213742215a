import CortexCore
public import Hummingbird

/// The multi-tenant ops API's `ALLOWED_HOSTS`: a request whose `Host` matches none of the names
/// is refused with 400 `host_not_allowed` before any other work (a DNS-rebinding page, or a
/// proxy sending traffic for a name this deployment does not serve).
///
/// Probes and `/metrics` answer whatever the host: the orchestrator and Prometheus call the pod
/// by its address.
public struct HostCheckMiddleware<Context: RequestIDContext>: RouterMiddleware {
    /// Exact names, and the domains of `*.domain` patterns (with the leading dot); `any` for `*`.
    let names: Set<String>
    let domains: [String]
    let any: Bool
    /// Paths answered whatever the host.
    let exempt: Set<String>

    /// Accepts `patterns` (lowercase; see ``isValidPattern(_:)``), and any host on `exempt` paths.
    public init(patterns: [String], exempt: Set<String>) {
        any = patterns.contains("*")
        names = Set(patterns.filter { !$0.hasPrefix("*") })
        domains = patterns.filter { $0.hasPrefix("*.") }.map { String($0.dropFirst()) }
        self.exempt = exempt
    }

    /// A host name (letters, digits, `-`, `.`, 1-253 characters), `*.` and a name, or `*`.
    public static func isValidPattern(_ pattern: String) -> Bool {
        if pattern == "*" { return true }
        let name = pattern.hasPrefix("*.") ? pattern.dropFirst(2) : pattern[...]
        return (1...253).contains(name.utf8.count) && !name.hasPrefix(".") && !name.hasSuffix(".") && !name.contains("..")
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "-"), UInt8(ascii: "."):
                    true
                default: false
                }
            }
    }

    /// The host of an `authority` (`Host` header): without the port, lowercased; an IPv6
    /// literal keeps its brackets.
    static func host(of authority: String) -> String {
        let lowered = authority.lowercased()
        if lowered.hasPrefix("["), let end = lowered.firstIndex(of: "]") { return String(lowered[...end]) }
        return String(lowered.prefix { $0 != ":" })
    }

    /// Whether `authority` names an allowed host.
    func allows(_ authority: String?) -> Bool {
        if any { return true }
        guard let authority else { return false }
        let host = Self.host(of: authority)
        return names.contains(host) || domains.contains { host.hasSuffix($0) && host.count > $0.count }
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard allows(request.head.authority) || exempt.contains(request.uri.path) else {
            let host = request.head.authority ?? "(none)"
            throw APIError(
                status: 400, code: "host_not_allowed",
                message: "Host \(String(host.prefix(256))) is not in ALLOWED_HOSTS; call this server by one of its names",
                fields: [("host", .string(String(host.prefix(256))))])
        }
        return try await next(request, context)
    }
}
