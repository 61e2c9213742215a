import CortexCore
import CortexTestSupport
import Foundation
import NIOCore
import Testing

@testable import CortexStore

@Suite("RESP wire format")
struct RESPTests {
    static func decode(_ text: String) throws -> RESPValue? {
        var buffer = ByteBuffer(string: text)
        return try RESP.decode(&buffer)
    }

    @Test("every reply type, nested arrays and nulls")
    func types() throws {
        #expect(try Self.decode("+OK\r\n") == .simpleString("OK"))
        #expect(try Self.decode("-ERR wrong\r\n") == .error("ERR wrong"))
        #expect(try Self.decode(":-42\r\n") == .integer(-42))
        #expect(try Self.decode("$5\r\nhe\r\no\r\n") == .bulkString(Array("he\r\no".utf8)))
        #expect(try Self.decode("$-1\r\n") == .bulkString(nil))
        #expect(try Self.decode("*-1\r\n") == .array(nil))
        #expect(try Self.decode("*2\r\n:1\r\n*1\r\n$1\r\nx\r\n") == .array([.integer(1), .array([.bulkString([UInt8(ascii: "x")])])]))
    }

    @Test("a reply cut anywhere waits for the rest and consumes nothing")
    func partial() throws {
        let whole = "*3\r\n:1\r\n$3\r\nabc\r\n+OK\r\n"
        for cut in 0..<whole.utf8.count {
            var buffer = ByteBuffer(string: String(whole.utf8.prefix(cut))!)
            #expect(try RESP.decode(&buffer) == nil, "cut at \(cut)")
            #expect(buffer.readableBytes == cut)
        }
        #expect(try Self.decode(whole) == .array([.integer(1), .bulkString(Array("abc".utf8)), .simpleString("OK")]))
    }

    @Test("malformed replies are protocol errors")
    func malformed() {
        for text in ["?x\r\n", ":abc\r\n", "$-5\r\n", "*x\r\n"] {
            #expect(throws: RESP.ProtocolError.self) { _ = try Self.decode(text) }
        }
    }

    @Test("commands are arrays of bulk strings")
    func encode() {
        var buffer = ByteBuffer()
        RESP.encode(["SET", "k", "é"], into: &buffer)
        #expect(String(buffer: buffer) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n")
    }
}

@Suite("Redis client against a real redis-server", .serialized)
struct RedisClientTests {
    @Test("commands, error replies, scripts, and 200 pipelined commands in flight at once")
    func commands() async throws {
        let server = try RedisTestServer()
        let client = try RedisClient(url: server.url, timeout: .seconds(10))
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        #expect(try await client.send(["SET", "k", "v"]) == .simpleString("OK"))
        #expect(try await client.send(["GET", "k"]).string == "v")
        #expect(try await client.send(["GET", "missing"]) == .bulkString(nil))
        guard case .error(let message) = try await client.send(["NOPE"]) else {
            Issue.record("an unknown command is an error reply")
            return
        }
        #expect(message.hasPrefix("ERR"))
        #expect(
            try await client.send(["EVAL", "return {1, ARGV[1]}", "0", "x"]) == .array([.integer(1), .bulkString([UInt8(ascii: "x")])]))
        try await withThrowingTaskGroup(of: RESPValue.self) { group in
            for _ in 0..<200 { group.addTask { try await client.send(["INCR", "counter"]) } }
            var seen: Set<Int64> = []
            for try await reply in group {
                if case .integer(let value) = reply { seen.insert(value) }
            }
            #expect(seen == Set(1...200), "each reply went to its own command")
        }
        await client.close()
    }

    @Test(
        "a password in the URL authenticates each connection; a wrong one is a handshake error naming Redis's refusal, never the password")
    func password() async throws {
        let server = try RedisTestServer(password: "s3cret/pw")
        let authenticated = try RedisClient(url: "redis://:s3cret%2Fpw@127.0.0.1:\(server.port)", timeout: .seconds(10))
        #expect(try await authenticated.send(["PING"]) == .simpleString("PONG"))
        // The ACL form: the default user with the same password.
        let withUser = try RedisClient(url: "redis://default:s3cret%2Fpw@127.0.0.1:\(server.port)", timeout: .seconds(10))
        #expect(try await withUser.send(["PING"]) == .simpleString("PONG"))

        let wrong = try RedisClient(url: "redis://:nope@127.0.0.1:\(server.port)", timeout: .seconds(10))
        do {
            _ = try await wrong.send(["PING"])
            Issue.record("a wrong password must fail the connection")
        } catch let error as RedisError {
            guard case .handshake(let message) = error else {
                Issue.record("expected a handshake error, got \(error)")
                return
            }
            #expect(message.contains("WRONGPASS") || message.contains("invalid password"))
            #expect(!"\(error)".contains("nope"))
        }
        // Without the password every command is refused by Redis itself.
        let anonymous = try RedisClient(url: server.url, timeout: .seconds(10))
        guard case .error(let refusal) = try await anonymous.send(["PING"]) else {
            Issue.record("Redis with requirepass refuses commands before AUTH")
            return
        }
        #expect(refusal.hasPrefix("NOAUTH"))
        for client in [authenticated, withUser, wrong, anonymous] { await client.close() }
    }

    @Test(
        "a database number in the URL selects that database on every connection; a bad one, or a bad URL, is refused without its password")
    func database() async throws {
        let server = try RedisTestServer()
        let one = try RedisClient(url: server.url + "/1", timeout: .seconds(10))
        let zero = try RedisClient(url: server.url + "/0", timeout: .seconds(10))
        #expect(try await one.send(["SET", "where", "one"]) == .simpleString("OK"))
        #expect(try await one.send(["GET", "where"]).string == "one")
        #expect(try await zero.send(["GET", "where"]) == .bulkString(nil), "database 0 is another keyspace")
        await one.close()
        await zero.close()

        for bad in [
            "redis://:hunter2@127.0.0.1:6379/x", "redis://:hunter2@127.0.0.1:6379/-1", "rediss://:hunter2@127.0.0.1:6379/x",
            "http://:hunter2@h:1",
        ] {
            do {
                _ = try RedisClient(url: bad)
                Issue.record("\(bad) must be refused")
            } catch {
                #expect("\(error)".contains("redis://[[user]:password@]host[:port][/database]"))
                #expect(!"\(error)".contains("hunter2"), "the password stays out of the message")
            }
        }
    }

    @Test("a Redis that is down fails fast; after it is back the client reconnects by itself")
    func reconnect() async throws {
        let server = try RedisTestServer()
        let client = try RedisClient(url: server.url, timeout: .seconds(5))
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        server.stop()
        // Fast: each call fails on the refused connection itself, not by waiting out its deadline
        // (checked by what failed, not by a clock, which a busy machine would make flaky).
        for _ in 0..<2 {
            await #expect {
                _ = try await client.send(["PING"])
            } throws: { error in
                (error as? RedisError) != .timeout
            }
        }
        try server.start()
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        await client.close()
    }

    @Test("a server that accepts but never answers times out within the deadline (connecting late counts as a timeout too)")
    func timeout() async throws {
        // A listening socket nobody reads from: the connection opens, no reply ever comes.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        #expect(listening && listen(fd, 8) == 0)
        let client = try RedisClient(url: "redis://127.0.0.1:\(UInt16(bigEndian: address.sin_port))", timeout: .milliseconds(100))
        await #expect(throws: RedisError.timeout) { _ = try await client.send(["PING"]) }
        await client.close()
    }

    @Test("REDIS_URL must be redis://host:port")
    func invalidURL() {
        #expect(throws: RedisError.invalidURL("http://x")) { _ = try RedisClient(url: "http://x") }
    }
}

@Suite("GCRA in Redis", .serialized)
struct RedisRateLimitTests {
    @Test("one script decides for every client: two clients share one budget of 5 per burst")
    func shared() async throws {
        let server = try RedisTestServer()
        // Deadlines far beyond any answer: this test is about sharing, not latency, and the machine may be busy.
        let first = RedisRateLimit(client: try RedisClient(url: server.url, timeout: .seconds(10)))
        let second = RedisRateLimit(client: try RedisClient(url: server.url, timeout: .seconds(10)))
        // One token per 100 s: nothing refills during the test, however slow the machine is.
        let limit = GCRA(rate: 0.01, burst: 5)
        var decisions: [GCRA.Decision] = []
        let start = ContinuousClock.now
        for index in 0..<20 {
            decisions.append(try await (index.isMultiple(of: 2) ? first : second).decide(key: "key:1", limit: limit))
        }
        let elapsed = ContinuousClock.now - start
        let allowed = decisions.filter(\.allowed)
        #expect(allowed.count == 5, "one budget for both clients, not one each")
        #expect(decisions.first?.remaining == 4)
        // The budget's next token comes 100 s after the first decision (Redis's clock): the last
        // refusal waits 100 s less the time the decisions took (a busy test process can stall for seconds).
        let refused = try #require(decisions.last { !$0.allowed })
        let retryAfter = Duration.nanoseconds(refused.retryAfter)
        #expect(retryAfter > .seconds(99) - elapsed && retryAfter <= .seconds(100))
        // Another key has its own budget.
        #expect(try await first.decide(key: "key:2", limit: limit).allowed)
        await first.close()
        await second.close()
    }

    @Test("costs in Redis: cost 0 asks without spending; force spends past the budget, which then refuses")
    func costs() async throws {
        let server = try RedisTestServer()
        let client = RedisRateLimit(client: try RedisClient(url: server.url, timeout: .seconds(10)))
        // 20 tokens at once, refilling one per 100 s: nothing refills during the test.
        let limit = GCRA(rate: 0.01, burst: 20)
        let twelve = try await client.decide(key: "tok:1", limit: limit, cost: 12)
        #expect(twelve.allowed && twelve.remaining == 8)
        #expect(try await client.decide(key: "tok:1", limit: limit, cost: 0).allowed)
        #expect(try await client.decide(key: "tok:1", limit: limit, cost: 0).remaining == 8, "asking spent nothing")
        let forced = try await client.decide(key: "tok:1", limit: limit, cost: 12, force: true)
        #expect(!forced.allowed, "4 past the budget")
        let over = try await client.decide(key: "tok:1", limit: limit, cost: 0)
        #expect(!over.allowed && over.retryAfter > 390_000_000_000 && over.retryAfter <= 400_000_000_000)
        await client.close()
    }
}
