import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing

@testable import CortexRuntime

/// The providers' HTTP/1.1 client over TLS (`https` providers and model endpoints), against a
/// real TLS server on loopback whose certificate a throw-away CA (made here with `openssl`)
/// signed for `localhost` only.
@Suite("Upstream HTTP client over TLS")
struct UpstreamTLSTests {
    /// A CA, and a server certificate it signed for the name `localhost` (no IP address).
    struct Certificates {
        let ca: NIOSSLCertificate
        let server: NIOSSLCertificate
        let key: NIOSSLPrivateKey

        static func make() async throws -> Certificates {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let files = try await Self.files(in: directory)
            return Certificates(
                ca: try NIOSSLCertificate(file: files.ca, format: .pem),
                server: try NIOSSLCertificate(file: files.certificate, format: .pem),
                key: try NIOSSLPrivateKey(file: files.key, format: .pem))
        }

        /// The same as PEM files in `directory`: the CA, and a certificate for `localhost` (server
        /// and client use) with its key.
        static func files(in directory: TemporaryDirectory) async throws -> (ca: String, certificate: String, key: String) {
            let file = directory.file
            try "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n".write(
                toFile: file("server.ext"), atomically: true, encoding: .utf8)
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            for arguments in [
                ["req", "-x509"] + ec + [
                    "-keyout", file("ca.key"), "-out", file("ca.pem"), "-subj", "/CN=cortex-test-ca", "-days", "2",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                ],
                ["req"] + ec + ["-keyout", file("server.key"), "-out", file("server.csr"), "-subj", "/CN=localhost"],
                [
                    "x509", "-req", "-in", file("server.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"),
                    "-CAcreateserial", "-out", file("server.pem"), "-days", "2", "-extfile", file("server.ext"),
                ],
            ] {
                let run = try await CortexProcess.runToCompletion("/usr/bin/openssl", arguments, timeout: .seconds(60))
                try #require(run.status == 0, "openssl \(arguments.prefix(2)): \(run.stderr)")
            }
            return (file("ca.pem"), file("server.pem"), file("server.key"))
        }
    }

    /// Starts a TLS server answering `POST /v1/chat/completions` with the size of the body it got;
    /// returns its port. Never stopped (see FakeLLMServer): it lives until the test process exits.
    static func server(_ certificates: Certificates) async throws -> Int {
        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            let host = request.head.authority ?? ""
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"received":\#(body.readableBytes),"host":"\#(host)"}"#)))
        }
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(certificates.server)], privateKey: .privateKey(certificates.key))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router,
            server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "fake-tls", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        Task { try await application.runService() }
        var iterator = ports.makeAsyncIterator()
        return await iterator.next() ?? 0
    }

    static func post(_ client: UpstreamHTTPClient, host: String, port: Int) async throws -> (status: Int, body: String) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        let request = UpstreamRequest(
            method: .POST, address: UpstreamAddress(host: host, port: port, tls: true), target: "/v1/chat/completions",
            headers: headers, body: ByteBuffer(string: #"{"ask":1}"#))
        let response = try await client.execute(
            request, connectTimeout: .seconds(5), readTimeout: .seconds(10), deadline: .now() + .seconds(30))
        return (response.status, String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    @Test("https: the certificate is verified against the trusted CA and the host name; requests on kept-alive connections are answered")
    func verified() async throws {
        let certificates = try await Certificates.make()
        let port = try await Self.server(certificates)
        var trusting = TLSConfiguration.makeClientConfiguration()
        trusting.trustRoots = .certificates([certificates.ca])
        let client = UpstreamHTTPClient(tls: trusting)
        for _ in 0..<5 {
            let answer = try await Self.post(client, host: "localhost", port: port)
            #expect(answer.status == 200 && answer.body == #"{"received":9,"host":"localhost:\#(port)"}"#, "\(answer)")
        }
        // The certificate names `localhost`, not the address: refused.
        await #expect(throws: (any Error).self) { _ = try await Self.post(client, host: "127.0.0.1", port: port) }
        // The system's roots do not include the test CA: refused.
        await #expect(throws: (any Error).self) { _ = try await Self.post(UpstreamHTTPClient.shared, host: "localhost", port: port) }
    }

    @Test("https URLs go to this client over TLS on port 443 by default; http on 80")
    func urls() throws {
        let secure = try #require(plainURL("https://api.example.com/v1"))
        #expect(secure.address == UpstreamAddress(host: "api.example.com", port: 443, tls: true) && secure.path == "/v1")
        let plain = try #require(plainURL("http://127.0.0.1:8080/v2?x=1"))
        #expect(plain.address == UpstreamAddress(host: "127.0.0.1", port: 8080, tls: false) && plain.path == "/v2?x=1")
        #expect(plainURL("https://user:secret@api.example.com") == nil, "credentials in the URL stay on AsyncHTTPClient")
        #expect(plainURL("ftp://example.com") == nil)
    }
}
