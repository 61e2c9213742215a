import Crypto
public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// AWS Signature Version 4: the `Authorization` header that SageMaker's `InvokeEndpoint` (and
/// every other AWS API) requires, computed from the request and the credentials.
///
/// A value with no I/O and no clock (the date is given), tested against AWS's published test
/// vectors. Paths are normalised and each segment URI-encoded once (SageMaker, like S3, takes
/// the path as sent); query parameters are sorted by encoded name and value; header values are
/// trimmed with inner runs of spaces collapsed, and repeated headers joined with commas.
public struct SignatureV4: Sendable {
    /// The credentials: from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    public struct Credentials: Sendable, Equatable {
        public var accessKeyID: String
        public var secretAccessKey: String
        /// A temporary credential's token, sent and signed as `X-Amz-Security-Token`.
        public var sessionToken: String?

        public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
        }
    }

    public var credentials: Credentials
    public var region: String
    /// The signing name: `sagemaker` for the SageMaker runtime.
    public var service: String

    public init(credentials: Credentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// `20150830T123600Z` for a date, in UTC. Formatted by hand: a `DateFormatter` costs more to
    /// make than the whole signature, and one is needed per signed request.
    public static func amzDate(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    /// The headers to add to a request: `X-Amz-Date`, `X-Amz-Security-Token` with a session
    /// token, and `Authorization`. `headers` must hold `Host`.
    public func headers(
        method: String, path: String, query: String = "", headers: [(String, String)], body: [UInt8], date: Date
    ) -> [(String, String)] {
        let amzDate = Self.amzDate(date)
        var added = [("X-Amz-Date", amzDate)]
        if let token = credentials.sessionToken { added.append(("X-Amz-Security-Token", token)) }
        let authorization = authorization(
            method: method, path: path, query: query, headers: headers + added, body: body, amzDate: amzDate)
        return added + [("Authorization", authorization)]
    }

    /// `AWS4-HMAC-SHA256 Credential=.../date/region/service/aws4_request, SignedHeaders=...,
    /// Signature=...` for a request whose headers already hold `X-Amz-Date` (`amzDate`).
    public func authorization(
        method: String, path: String, query: String, headers: [(String, String)], body: [UInt8], amzDate: String
    ) -> String {
        let (canonical, signed) = Self.canonicalRequest(method: method, path: path, query: query, headers: headers, body: body)
        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(Self.hex(SHA256.hash(data: Array(canonical.utf8))))"
        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        return "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signed), Signature=\(signature)"
    }

    /// The canonical request and the signed headers' list.
    public static func canonicalRequest(method: String, path: String, query: String, headers: [(String, String)], body: [UInt8])
        -> (request: String, signedHeaders: String)
    {
        var grouped: [String: [String]] = [:]
        for (name, value) in headers {
            let trimmed = value.trimmingCharacters(in: .whitespaces).split(separator: " ", omittingEmptySubsequences: true)
                .joined(separator: " ")
            grouped[name.lowercased(), default: []].append(trimmed)
        }
        let names = grouped.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(grouped[$0]?.joined(separator: ",") ?? "")\n" }.joined()
        let signed = names.joined(separator: ";")
        let request = [
            method, canonicalPath(path), canonicalQuery(query), canonicalHeaders, signed, hex(SHA256.hash(data: body)),
        ].joined(separator: "\n")
        return (request, signed)
    }

    /// The path without empty, `.` and `..` segments, each segment encoded.
    static func canonicalPath(_ path: String) -> String {
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch segment {
            case ".": continue
            case "..": _ = segments.popLast()
            default: segments.append(segment)
            }
        }
        let joined = "/" + segments.map { encode(String($0)) }.joined(separator: "/")
        return path.hasSuffix("/") && !segments.isEmpty ? joined + "/" : joined
    }

    /// `a=1&b=2`: each name and value decoded, then encoded, sorted by name then value.
    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&").map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            return (encode(name), encode(value))
        }
        return pairs.sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// RFC 3986 encoding: unreserved characters kept, every other byte `%XX` in capitals.
    static func encode(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result += String(format: "%%%02X", byte)
            }
        }
        return result
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
