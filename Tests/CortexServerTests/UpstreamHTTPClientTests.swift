import CortexTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import CortexRuntime

/// The providers' HTTP/1.1 client against raw servers on loopback ports: keep-alive, servers
/// that close kept-alive connections, chunked answers, timeouts and refused connections. (The
/// providers' tests, LLMProviderTests, HardeningTests and the rest, run every wire format,
/// stream, cut and fallback through it too, since their fakes are plain `http`.)
@Suite("Upstream HTTP client: a keep-alive pool per event loop")
struct UpstreamHTTPClientTests {
    static func post(_ port: Int, body: String = #"{"ask":1}"#, read: Duration = .seconds(10)) async throws -> (status: Int, body: String) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        let request = UpstreamRequest(
            method: .POST, address: UpstreamAddress(host: "127.0.0.1", port: port), target: "/v1/chat/completions",
            headers: headers, body: ByteBuffer(string: body))
        let response = try await UpstreamHTTPClient.shared.execute(
            request, connectTimeout: .seconds(5), readTimeout: read, deadline: .now() + .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (response.status, String(buffer: bytes))
    }

    static func kept(_ body: String) -> String {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    @Test("kept-alive connections are reused: 20 requests one after another open one connection")
    func reuse() async throws {
        let upstream = try RawUpstream(keepsAlive: true) { request in Self.kept(#"{"n":"\#(request.count)"}"#) }
        defer { upstream.stop() }
        for _ in 0..<20 {
            let answer = try await Self.post(upstream.port)
            #expect(answer.status == 200 && answer.body.hasPrefix(#"{"n":"#), "\(answer)")
        }
        #expect(upstream.connections == 1)
        #expect(upstream.received.count == 20)
        #expect(upstream.received.allSatisfy { $0.hasPrefix("POST /v1/chat/completions HTTP/1.1\r\n") && $0.hasSuffix(#"{"ask":1}"#) })
    }

    @Test("a server that closes kept-alive connections between requests: every request is answered, on a new connection")
    func serverCloses() async throws {
        // Answers as if the connection stayed open (no `Connection: close`), then closes it.
        let upstream = try RawUpstream { _ in Self.kept(#"{"ok":true}"#) }
        defer { upstream.stop() }
        for _ in 0..<20 {
            let answer = try await Self.post(upstream.port)
            #expect(answer.status == 200 && answer.body == #"{"ok":true}"#)
        }
        #expect(upstream.connections == 20)
    }

    @Test("the provider closes every idle connection (a restart): the next requests are answered on new ones")
    func idleConnectionsClosed() async throws {
        // Slow enough that 4 requests at once hold 4 connections, which then wait in the pool.
        let upstream = try RawUpstream(keepsAlive: true) { _ in
            Thread.sleep(forTimeInterval: 0.05)
            return Self.kept(#"{"ok":true}"#)
        }
        defer { upstream.stop() }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 { group.addTask { try await Self.post(upstream.port).status } }
            for try await status in group { #expect(status == 200) }
        }
        let opened = upstream.connections
        #expect(opened >= 2, "concurrent requests took connections of their own")
        upstream.closeKeptConnections()
        for _ in 0..<8 {
            let answer = try await Self.post(upstream.port)
            #expect(answer.status == 200 && answer.body == #"{"ok":true}"#)
        }
        // Sequential requests after the close share one new connection (per loop the callers run on).
        #expect(upstream.connections > opened && upstream.connections <= opened + 2)
    }

    @Test("a chunked answer is read whole, and the connection then serves the next request")
    func chunked() async throws {
        let upstream = try RawUpstream(keepsAlive: true) { _ in
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "6\r\ndata: \r\n" + "c\r\n{\"token\":1}\n\r\n" + "1\r\n\n\r\n" + "0\r\n\r\n"
        }
        defer { upstream.stop() }
        for _ in 0..<3 {
            let answer = try await Self.post(upstream.port)
            #expect(answer.status == 200 && answer.body == "data: {\"token\":1}\n\n", "\(answer)")
        }
        #expect(upstream.connections == 1)
    }

    @Test("an error status comes back with its body; the connection stays usable")
    func errorStatus() async throws {
        let upstream = try RawUpstream(keepsAlive: true) { _ in
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 20\r\nRetry-After: 1\r\n\r\n{\"error\":\"slow dn\"}\n"
        }
        defer { upstream.stop() }
        let first = try await Self.post(upstream.port)
        let second = try await Self.post(upstream.port)
        #expect(first.status == 429 && first.body == "{\"error\":\"slow dn\"}\n")
        #expect(second.status == 429)
        #expect(upstream.connections == 1)
    }

    @Test("a head that never comes is a read timeout; a refused connection fails at once")
    func timeoutsAndRefusals() async throws {
        // Reads the request, never answers (the connection stays open until the client gives up).
        let silent = try RawUpstream(keepsAlive: true) { _ in
            Thread.sleep(forTimeInterval: 2)
            return ""
        }
        defer { silent.stop() }
        await #expect {
            _ = try await Self.post(silent.port, read: .milliseconds(200))
        } throws: { ($0 as? UpstreamFailure)?.kind == .readTimeout }

        let port = try LoopbackPort.free()
        await #expect {
            _ = try await Self.post(port)
        } throws: { ($0 as? UpstreamFailure)?.kind == .connectFailed }
    }
}
