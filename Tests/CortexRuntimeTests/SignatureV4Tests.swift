import CortexRuntime
import Foundation
import Testing

/// Signature Version 4 against AWS's published test vectors: every canonical request and
/// every `Authorization` header, byte for byte.
@Suite("AWS Signature Version 4 (the published test vectors)")
struct SignatureV4Tests {
    struct Vectors: Decodable {
        struct Vector: Decodable {
            var name: String
            var method: String
            var path: String
            var query: String
            var headers: [[String]]
            var body: String
            var canonical_request: String
            var authorization: String
        }
        var access_key_id: String
        var secret_access_key: String
        var region: String
        var service: String
        var date: String
        var session_token: String
        var vectors: [Vector]
    }

    static func load() throws -> Vectors {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("Tests/CortexRuntimeTests/Fixtures/sigv4-vectors.json")))
        return try JSONDecoder().decode(Vectors.self, from: data)
    }

    @Test("every vector's canonical request and authorization, including paths to normalise, UTF-8 queries and a session token")
    func vectors() throws {
        let suite = try Self.load()
        #expect(suite.vectors.count >= 25)
        for vector in suite.vectors {
            let headers = vector.headers.map { ($0[0], $0[1]) }
            let body = Array(vector.body.utf8)
            let canonical = SignatureV4.canonicalRequest(
                method: vector.method, path: vector.path, query: vector.query, headers: headers, body: body)
            #expect(canonical.request == vector.canonical_request, "\(vector.name)")
            let token = headers.contains { $0.0.lowercased() == "x-amz-security-token" } ? suite.session_token : nil
            let signer = SignatureV4(
                credentials: .init(accessKeyID: suite.access_key_id, secretAccessKey: suite.secret_access_key, sessionToken: token),
                region: suite.region, service: suite.service)
            let authorization = signer.authorization(
                method: vector.method, path: vector.path, query: vector.query, headers: headers, body: body, amzDate: suite.date)
            #expect(authorization == vector.authorization, "\(vector.name)")
        }
    }

    @Test("headers(...) adds X-Amz-Date, the session token and the Authorization that signs them")
    func addedHeaders() throws {
        let suite = try Self.load()
        let signer = SignatureV4(
            credentials: .init(accessKeyID: suite.access_key_id, secretAccessKey: suite.secret_access_key, sessionToken: "token-1"),
            region: "eu-west-1", service: "sagemaker")
        let date = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z
        let added = signer.headers(
            method: "POST", path: "/endpoints/lead-scoring/invocations",
            headers: [("Host", "runtime.sagemaker.eu-west-1.amazonaws.com"), ("Content-Type", "application/json")], body: Array("{}".utf8),
            date: date)
        #expect(added.map(\.0) == ["X-Amz-Date", "X-Amz-Security-Token", "Authorization"])
        #expect(added[0].1 == "20150830T123600Z" && added[1].1 == "token-1")
        let authorization = added[2].1
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/sagemaker/aws4_request, "))
        #expect(authorization.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="))
        // The same request signed again is the same; another body is not.
        let again = signer.headers(
            method: "POST", path: "/endpoints/lead-scoring/invocations",
            headers: [("Host", "runtime.sagemaker.eu-west-1.amazonaws.com"), ("Content-Type", "application/json")], body: Array("{}".utf8),
            date: date)
        let other = signer.headers(
            method: "POST", path: "/endpoints/lead-scoring/invocations",
            headers: [("Host", "runtime.sagemaker.eu-west-1.amazonaws.com"), ("Content-Type", "application/json")], body: Array("[]".utf8),
            date: date)
        #expect(again[2].1 == authorization && other[2].1 != authorization)
        #expect(!authorization.contains(suite.secret_access_key), "the secret never appears")
    }

    @Test("X-Amz-Date is the UTC time as yyyyMMddTHHmmssZ, zero-padded, seconds cut down")
    func amzDate() {
        #expect(SignatureV4.amzDate(Date(timeIntervalSince1970: 1_440_938_160)) == "20150830T123600Z")
        #expect(SignatureV4.amzDate(Date(timeIntervalSince1970: 946_684_799.9)) == "19991231T235959Z")
        #expect(SignatureV4.amzDate(Date(timeIntervalSince1970: 1_796_083_205)) == "20261201T000005Z")
    }

}
