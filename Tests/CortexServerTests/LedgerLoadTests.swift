import AsyncHTTPClient
import CortexTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

/// The ledger's guarantees against the real binary on a real port.
@Suite("Ledger under load (real processes, SQLite and PostgreSQL)", .serialized)
struct LedgerLoadTests {
    enum Backend: String, CaseIterable, CustomStringConvertible, Sendable {
        case sqlite, postgres
        var description: String { rawValue }

        /// Runs `body` with a fresh database (an SQLite path or a PostgreSQL URL) and a temporary directory.
        func withDatabase(_ body: (String, TemporaryDirectory) async throws -> Void) async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            switch self {
            case .sqlite: try await body(directory.file("cortex.db"), directory)
            case .postgres: try await PostgresTestServer.withDatabase { try await body($0, directory) }
            }
        }
    }

    /// Starts `cortex serve` on `database` with `environment`.
    static func serve(_ database: String, _ directory: TemporaryDirectory, _ environment: [String: String]) async throws -> (
        CortexProcess, port: Int
    ) {
        var environment = environment
        environment["DATABASE_URL"] = database.hasPrefix("postgres") ? database : "sqlite:" + database
        return try await CortexProcess.serve(environment: environment, directory: directory)
    }

    static let lead = #"{"features":{"pages_viewed":12,"email_opens":3}}"#

    /// A client that opens as many connections as there are requests in flight.
    static func withClient<Value>(_ body: (HTTPClient) async throws -> Value) async throws -> Value {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 1000)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let value = try await body(client)
            try await client.shutdown()
            return value
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// POSTs one lead with the demo key; returns the status, or `nil` when the connection failed.
    static func score(_ client: HTTPClient, port: Int, requestID: String? = nil) async -> Int? {
        var headers = [("X-API-Key", RawHTTPConnection.demoKey)]
        if let requestID { headers.append(("X-Request-ID", requestID)) }
        return await post(client, port: port, path: "/api/v1/score", body: lead, headers: headers)
    }

    /// POSTs a JSON `body` to `path` with `headers`; returns the status, or `nil` when the
    /// connection failed or no answer came within `timeout`.
    static func post(
        _ client: HTTPClient, port: Int, path: String, body: String, headers: [(String, String)], timeout: Duration = .seconds(60)
    ) async -> Int? {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await client.execute(request, timeout: .init(timeout))
            _ = try await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        } catch {
            return nil
        }
    }

    /// `/me` once nothing is held any more (the sweeper has released what died), or after 10 s.
    static func settledMe(port: Int) async throws -> [String: Any] {
        var me: [String: Any] = [:]
        for _ in 0..<100 {
            me = try Self.me(port: port)
            if (me["held"] as? NSNumber)?.intValue == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return me
    }

    static func me(port: Int) throws -> [String: Any] {
        let body = try #require(try RawHTTPConnection.request(port: port, path: "/me")?.body)
        return try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
    }

    /// Stops `processes` with SIGTERM, expects each to exit 0, then expects `cortex db verify` clean.
    static func stopAndVerify(_ processes: [CortexProcess], database: String) async throws {
        for process in processes { process.signal(SIGTERM) }
        for process in processes { #expect(try await process.waitForExit() == 0) }
        let verify = try await IdentityCLITests.run(["db", "verify"], database: database)
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    static let overspendEnvironment = ["MODEL_PRICES": "lead-scoring=1", "DEMO_CREDITS": "100", "LOG_LEVEL": "notice"]

    /// Sends 1,000 concurrent requests, spread over `ports`, and checks that exactly the 100 the balance covers succeed.
    static func overspend(ports: [Int]) async throws {
        let statuses = try await Self.withClient { client in
            await withTaskGroup(of: Int?.self) { group in
                for index in 0..<1000 {
                    group.addTask { await Self.score(client, port: ports[index % ports.count]) }
                }
                return await group.reduce(into: [Int?]()) { $0.append($1) }
            }
        }
        let other = statuses.filter { $0 != 200 && $0 != 402 }.map { $0.map(String.init) ?? "no answer" }
        #expect(statuses.filter { $0 == 200 }.count == 100)
        #expect(statuses.filter { $0 == 402 }.count == 900, "other answers: \(Dictionary(grouping: other) { $0 }.mapValues(\.count))")
        for port in ports {
            let me = try Self.me(port: port)
            #expect((me["balance"] as? NSNumber)?.intValue == 0)
            #expect((me["held"] as? NSNumber)?.intValue == 0)
            #expect(((me["usage"] as? [String: Any])?["requests"] as? NSNumber)?.intValue == 100)
        }
    }

    @Test(
        "1,000 concurrent requests against a balance covering 100: exactly 100 succeed, 900 get 402, the balance ends at 0",
        arguments: Backend.allCases
    )
    func overspend(backend: Backend) async throws {
        try await backend.withDatabase { database, directory in
            let (cortex, port) = try await Self.serve(database, directory, Self.overspendEnvironment)
            defer { cortex.terminate() }
            try await Self.overspend(ports: [port])
            cortex.signal(SIGTERM)
            #expect(try await cortex.waitForExit() == 0, "\(cortex.stdout.suffix(2000)) \(cortex.stderr.suffix(2000))")
            let verify = try await IdentityCLITests.run(["db", "verify"], database: database)
            #expect(verify.status == 0, "\(verify.stdout)")
        }
    }

    @Test("two Cortex processes sharing PostgreSQL: 1,000 requests split between them, still exactly 100 succeed")
    func twoReplicas() async throws {
        try await Backend.postgres.withDatabase { database, directory in
            let (first, firstPort) = try await Self.serve(database, directory, Self.overspendEnvironment)
            defer { first.terminate() }
            let (second, secondPort) = try await Self.serve(database, directory, Self.overspendEnvironment)
            defer { second.terminate() }
            try await Self.overspend(ports: [firstPort, secondPort])
            // Both replicas really billed: each logged refusals of its own.
            #expect(first.stdout.contains("BILLING_FAIL") && second.stdout.contains("BILLING_FAIL"))
            try await Self.stopAndVerify([first, second], database: database)
        }
    }

    @Test("kill -9 under load: after restart every 200 has exactly one settlement and db verify passes", arguments: Backend.allCases)
    func killDuringLoad(backend: Backend) async throws {
        try await backend.withDatabase { database, directory in
            try await Self.killDuringLoad(database: database, directory: directory)
        }
    }

    static func killDuringLoad(database: String, directory: TemporaryDirectory) async throws {
        let environment = [
            "MODEL_PRICES": "lead-scoring=0.001", "DEMO_CREDITS": "1000", "LOG_LEVEL": "notice",
            "HOLD_TTL_S": "1", "HOLD_SWEEP_INTERVAL_S": "0.2",
        ]
        let (cortex, port) = try await Self.serve(database, directory, environment)
        defer { cortex.terminate() }
        let tally = Tally()
        try await Self.withClient { client in
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        while !tally.killed {
                            let id = "load-\(tally.next())"
                            switch await Self.score(client, port: port, requestID: id) {
                            case 200: tally.succeeded(id)
                            default: break
                            }
                        }
                    }
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(1))
                    cortex.signal(SIGKILL)
                    tally.kill()
                }
            }
        }
        let acknowledged = tally.acknowledged
        #expect(acknowledged.count > 50, "enough requests succeeded before the kill to mean something")
        #expect(try await cortex.waitForExit(timeout: .seconds(5)) == SIGKILL)

        // Restart: the sweeper releases the holds of requests that died with the process.
        let (restarted, newPort) = try await Self.serve(database, directory, environment)
        defer { restarted.terminate() }
        #expect((try await Self.settledMe(port: newPort)["held"] as? NSNumber)?.intValue == 0)
        restarted.signal(SIGTERM)
        #expect(try await restarted.waitForExit() == 0)

        let listing = try await IdentityCLITests.run(["credits", "entries", "demo", "--limit", "100000"], database: database)
        var settlements: [String: Int] = [:]
        for row in listing.stdout.split(separator: "\n").dropFirst() {
            let columns = row.split(separator: "\t", omittingEmptySubsequences: false)
            if columns.count > 4, columns[2] == "settle" { settlements[String(columns[4]), default: 0] += 1 }
        }
        let missing = acknowledged.filter { settlements[$0] != 1 }
        #expect(
            missing.isEmpty,
            "requests answered 200 without exactly one settlement: \(missing.prefix(5)); the listing exited \(String(describing: listing.status)) with \(listing.stdout.split(separator: "\n").count) lines, stderr: \(listing.stderr.prefix(300))"
        )
        let verify = try await IdentityCLITests.run(["db", "verify"], database: database)
        #expect(verify.status == 0, "\(verify.stdout)")
    }
}

extension LedgerLoadTests {
    static let adminToken = "ledger-admin-token-0123456789"
    static let tenantCount = 64

    /// Creates `count` tenants through the admin API, each granted `credits` and given an infer
    /// key; returns (name, key) pairs.
    static func makeTenants(_ client: HTTPClient, port: Int, count: Int, credits: Int) async throws -> [(name: String, key: String)] {
        var tenants: [(name: String, key: String)] = []
        let admin = [("Authorization", "Bearer \(adminToken)")]
        for index in 0..<count {
            let name = "tenant-\(index)"
            #expect(await post(client, port: port, path: "/admin/tenants", body: #"{"name":"\#(name)"}"#, headers: admin) == 201)
            #expect(
                await post(client, port: port, path: "/admin/tenants/\(name)/credits", body: #"{"amount":"\#(credits)"}"#, headers: admin)
                    == 200)
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/admin/tenants/\(name)/keys")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(adminToken)")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"scopes":["infer"]}"#))
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 16)
            let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
            tenants.append((name, try #require(object?["key"] as? String)))
        }
        return tenants
    }

    /// The tenant's balance and what is held, in micro-credits, and its settled requests, through the admin API.
    static func credits(port: Int, tenant: String) throws -> (balance: Int?, held: Int?, requests: Int?, leased: Int?) {
        let response = try RawHTTPConnection.request(
            port: port, path: "/admin/tenants/\(tenant)/credits?limit=1", demoKey: "", headers: [("Authorization", "Bearer \(adminToken)")])
        let body = try #require(response?.body)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        func micros(_ field: String) -> Int? {
            (object[field] as? NSNumber).map { Int(($0.doubleValue * 1_000_000).rounded()) }
        }
        let requests = ((object["usage"] as? [String: Any])?["requests"] as? NSNumber)?.intValue
        return (micros("balance"), micros("held"), requests, micros("leased"))
    }

    /// A sample of `name` (no labels) in the process's `/metrics`, or -1.
    static func sample(_ name: String, port: Int) throws -> Double {
        let metrics = try #require(try RawHTTPConnection.request(port: port, path: "/metrics")?.body)
        return metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) } ?? -1
    }

    @Test(
        "credit leases through the binary: one ledger write per billed request (two with CREDIT_LEASE_HOLDS=0); SIGTERM returns the lease",
        arguments: Backend.allCases)
    func creditLeases(backend: Backend) async throws {
        for holds in [100, 0] {
            try await backend.withDatabase { database, directory in
                let environment = [
                    "MODEL_PRICES": "lead-scoring=0.001", "DEMO_CREDITS": "1000", "LOG_LEVEL": "notice", "ADMIN_TOKEN": Self.adminToken,
                    "CREDIT_LEASE_HOLDS": String(holds),
                ]
                let (cortex, port) = try await Self.serve(database, directory, environment)
                defer { cortex.terminate() }
                try await Self.withClient { client in
                    for _ in 0..<50 {
                        let status = await Self.score(client, port: port)
                        #expect(status == 200)
                    }
                }
                // Ledger writes: the demo tenant's grant at start, then per request one settlement on
                // the lease (and the lease itself), or a hold and a settlement without leases.
                let writes = try Self.sample("ledger_batch_size_sum", port: port)
                let during = try Self.credits(port: port, tenant: "demo")
                if holds > 0 {
                    // (A pause of a second between requests returns the idle lease, and the next takes
                    // another: two writes more each time, whatever the machine's timing allows.)
                    #expect(writes >= 52 && writes <= 60, "\(writes) writes")
                    let leased = try #require(during.leased)
                    #expect(leased % 1000 == 0 && leased <= 100 * 1000, "whole holds, at most one lease of 100: \(during)")
                } else {
                    #expect(writes >= 101, "\(writes) writes")
                    #expect(during.leased == 0)
                }
                #expect(during.balance == 1000 * 1_000_000 - 50 * 1000 && during.requests == 50, "\(during)")
                cortex.signal(SIGTERM)
                #expect(try await cortex.waitForExit() == 0)
                // After the shutdown no lease is left: the balance row holds every unspent credit.
                let (again, againPort) = try await Self.serve(database, directory, environment)
                defer { again.terminate() }
                let after = try Self.credits(port: againPort, tenant: "demo")
                #expect(after.leased == 0 && after.balance == 1000 * 1_000_000 - 50 * 1000, "\(after)")
                try await Self.stopAndVerify([again], database: database)
            }
        }
    }

    @Test("64 tenants x 1,000 concurrent requests against two PostgreSQL replicas: exactly what each balance covers succeeds")
    func manyTenantsTwoReplicas() async throws {
        try await Backend.postgres.withDatabase { database, directory in
            let environment = ["MODEL_PRICES": "lead-scoring=1", "LOG_LEVEL": "notice", "ADMIN_TOKEN": Self.adminToken]
            let (first, firstPort) = try await Self.serve(database, directory, environment)
            defer { first.terminate() }
            let (second, secondPort) = try await Self.serve(database, directory, environment)
            defer { second.terminate() }
            let ports = [firstPort, secondPort]
            let covered = 150
            let perTenant = 1000
            let statuses = try await Self.withClient { client in
                let tenants = try await Self.makeTenants(client, port: firstPort, count: Self.tenantCount, credits: covered)
                // Every tenant's 1,000 requests, interleaved with the others' and split between the
                // replicas, 256 in flight at a time.
                let work = (0..<(perTenant * tenants.count)).map { (tenant: $0 % tenants.count, port: ports[($0 / tenants.count) % 2]) }
                return try await withThrowingTaskGroup(of: (Int, Int?).self) { group in
                    var results = [[Int?]](repeating: [], count: tenants.count)
                    var next = work.makeIterator()
                    func add() -> Bool {
                        guard let item = next.next() else { return false }
                        let key = tenants[item.tenant].key
                        group.addTask {
                            (
                                item.tenant,
                                await Self.post(
                                    client, port: item.port, path: "/api/v1/score", body: Self.lead, headers: [("X-API-Key", key)])
                            )
                        }
                        return true
                    }
                    for _ in 0..<256 where add() {}
                    while let (tenant, status) = try await group.next() {
                        results[tenant].append(status)
                        _ = add()
                    }
                    return zip(tenants, results).map { (name: $0.name, statuses: $1) }
                }
            }
            for tenant in statuses {
                let other = tenant.statuses.filter { $0 != 200 && $0 != 402 }.map { $0.map(String.init) ?? "no answer" }
                #expect(tenant.statuses.count == perTenant)
                #expect(tenant.statuses.filter { $0 == 200 }.count == covered, "\(tenant.name)")
                #expect(other.isEmpty, "\(tenant.name): \(Dictionary(grouping: other) { $0 }.mapValues(\.count))")
                let credits = try Self.credits(port: secondPort, tenant: tenant.name)
                #expect(credits.balance == 0 && credits.held == 0 && credits.requests == covered, "\(tenant.name): \(credits)")
            }
            // The writes went through the batch statement, many to a transaction, and none had
            // to be run again one by one (which would give the same totals, only slower).
            for port in ports {
                #expect(try Self.sample("ledger_batch_retries_total", port: port) == 0)
                #expect(
                    try Self.sample("ledger_batch_size_sum", port: port) > 1.5 * Self.sample("ledger_batch_size_count", port: port),
                    "\(port): batches of more than one write")
            }
            try await Self.stopAndVerify([first, second], database: database)
        }
    }

    @Test("kill -9 of one of two PostgreSQL replicas under load over 64 tenants: exact totals per tenant after its restart")
    func killOneReplica() async throws {
        try await Backend.postgres.withDatabase { database, directory in
            let environment = [
                "MODEL_PRICES": "lead-scoring=0.001", "LOG_LEVEL": "notice", "ADMIN_TOKEN": Self.adminToken,
                "HOLD_TTL_S": "1", "HOLD_SWEEP_INTERVAL_S": "0.2",
            ]
            let (victim, victimPort) = try await Self.serve(database, directory, environment)
            defer { victim.terminate() }
            let (survivor, survivorPort) = try await Self.serve(database, directory, environment)
            defer { survivor.terminate() }
            let credits = 1000
            let (tenants, acknowledged) = try await Self.withClient { client in
                let tenants = try await Self.makeTenants(client, port: survivorPort, count: Self.tenantCount, credits: credits)
                let tally = Tally()
                let answered = TenantTally()
                await withTaskGroup(of: Void.self) { group in
                    for worker in 0..<32 {
                        group.addTask {
                            var round = 0
                            while !tally.killed {
                                round += 1
                                let tenant = (worker * 7 + round) % tenants.count
                                let port = round % 2 == 0 ? victimPort : survivorPort
                                let status = await Self.post(
                                    client, port: port, path: "/api/v1/score", body: Self.lead,
                                    headers: [("X-API-Key", tenants[tenant].key)])
                                if status == 200 { answered.add(tenant) }
                            }
                        }
                    }
                    group.addTask {
                        try? await Task.sleep(for: .seconds(1.5))
                        victim.signal(SIGKILL)
                        try? await Task.sleep(for: .seconds(0.5))
                        tally.kill()
                    }
                }
                return (tenants, answered.counts)
            }
            #expect(acknowledged.values.reduce(0, +) > 100, "enough requests succeeded to mean something")
            #expect(try await victim.waitForExit(timeout: .seconds(5)) == SIGKILL)
            // Both replicas took and returned credit leases beside their batches, and no batch failed
            // (two replicas locking tenants out of order would deadlock, and run again one by one).
            #expect(try Self.sample("ledger_batch_retries_total", port: survivorPort) == 0)

            // The killed replica comes back; the holds of its dead requests expire and are released.
            let (restarted, restartedPort) = try await Self.serve(database, directory, environment)
            defer { restarted.terminate() }
            for (index, tenant) in tenants.enumerated() {
                var seen = try Self.credits(port: restartedPort, tenant: tenant.name)
                for _ in 0..<100 where seen.held != 0 {
                    try await Task.sleep(for: .milliseconds(100))
                    seen = try Self.credits(port: restartedPort, tenant: tenant.name)
                }
                let settled = acknowledged[index, default: 0]
                // Each 200 was settled at its price (1 milli-credit) and nothing else was charged:
                // a request in flight at the kill got no 200 and was released, or, settled just
                // before the kill, is counted in usage while its answer was lost.
                #expect(seen.held == 0, "\(tenant.name)")
                let requests = try #require(seen.requests)
                #expect(requests >= settled, "\(tenant.name): \(requests) settled, \(settled) answered 200")
                #expect(requests <= settled + 32, "\(tenant.name): at most the requests in flight at the kill lost their answer")
                let balance = try #require(seen.balance)
                #expect(
                    balance == credits * 1_000_000 - requests * 1000,
                    "\(tenant.name): balance \(balance) micro-credits, \(requests) settled")
            }
            try await Self.stopAndVerify([restarted, survivor], database: database)
        }
    }
}

/// Requests answered 200 per tenant (by index), shared by the load tasks.
final class TenantTally: Sendable {
    private let answered = Mutex<[Int: Int]>([:])

    func add(_ tenant: Int) { answered.withLock { $0[tenant, default: 0] += 1 } }
    var counts: [Int: Int] { answered.withLock { $0 } }
}

/// Request ids handed out and those answered 200, shared by the load tasks.
final class Tally: Sendable {
    private let counter = Atomic<Int>(0)
    private let ok = Mutex<[String]>([])
    private let stopped = Atomic<Bool>(false)

    /// Whether the server was killed: the load stops (requests in flight still finish or fail).
    var killed: Bool { stopped.load(ordering: .relaxed) }
    func kill() { stopped.store(true, ordering: .relaxed) }

    func next() -> Int { counter.add(1, ordering: .relaxed).newValue }
    func succeeded(_ id: String) { ok.withLock { $0.append(id) } }
    var acknowledged: [String] { ok.withLock { $0 } }
}
