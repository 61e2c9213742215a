import Foundation

/// Host names and IP addresses told apart, for TLS: SNI carries a name only, and an address is
/// checked against the certificate's addresses.
package enum IPAddress {
    /// Whether `host` is an IPv4 or IPv6 address rather than a name.
    package static func isLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
