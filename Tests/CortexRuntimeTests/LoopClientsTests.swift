import AsyncHTTPClient
import NIOCore
import NIOPosix
import Testing

@testable import CortexRuntime

/// Provider calls use connections on the event loop their task runs on, so a call and its answer
/// stay on one thread.
@Suite("LLM provider clients per event loop")
struct LoopClientsTests {
    @Test("on each of the shared group's loops the client lives on that loop and is reused; elsewhere it spans the group")
    func perLoop() async throws {
        let clients = ProviderHTTP.clients(connect: .seconds(3), read: .seconds(7))
        #expect(ProviderHTTP.clients(connect: .seconds(3), read: .seconds(7)) === clients, "one set per pair of timeouts")
        let loops = Array(NIOSingletons.posixEventLoopGroup.makeIterator())
        var seen: [ObjectIdentifier] = []
        for loop in loops {
            let (first, second) = try await loop.submit { (clients.current, clients.current) }.get()
            #expect(first.eventLoopGroup === loop, "the client's connections are made on the caller's loop")
            #expect(first === second)
            seen.append(ObjectIdentifier(first))
        }
        #expect(Set(seen).count == loops.count, "a client per loop")
        // The test's own thread is no event loop: the client there may use any of them.
        let elsewhere = clients.current
        #expect(!seen.contains(ObjectIdentifier(elsewhere)))
        #expect(elsewhere.eventLoopGroup === NIOSingletons.posixEventLoopGroup)
    }
}
