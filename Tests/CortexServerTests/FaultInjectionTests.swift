import CortexTestSupport
import Foundation
import Synchronization
import Testing

/// Parts failing under a real Cortex process: here, PostgreSQL restarted while billed requests
/// run. A cluster of the test's own (scripts/postgres.sh), so no other test sees the restart.
@Suite("Faults: PostgreSQL restarted under load (real processes)")
struct FaultInjectionTests {
    /// Starts a PostgreSQL cluster of this test's own; returns its URL and folder.
    static func cluster() async throws -> (url: String, directory: String) {
        let run = try await CortexProcess.runToCompletion(Repository.path("scripts/postgres.sh"), ["start"], timeout: .seconds(120))
        let value = { (name: String) in
            run.stdout.split(separator: "\n").first { $0.hasPrefix("export \(name)=") }.map {
                String($0.dropFirst("export \(name)=".count))
            }
        }
        guard run.status == 0, let url = value("CORTEX_TEST_POSTGRES_URL"), let directory = value("CORTEX_TEST_POSTGRES_DIR") else {
            throw CortexProcess.Failure.didNotStart("scripts/postgres.sh start: \(run.stdout)\(run.stderr)")
        }
        return (url, directory)
    }

    @Test(
        "PostgreSQL restarted under billed load: only 200s and 503s, every 200 settled exactly once, the pool reconnects, db verify clean")
    func postgresRestart() async throws {
        let (url, cluster) = try await Self.cluster()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        do {
            try await Self.restartUnderLoad(database: url, cluster: cluster, directory: directory)
        } catch {
            _ = try? await CortexProcess.runToCompletion(Repository.path("scripts/postgres.sh"), ["stop", cluster], timeout: .seconds(60))
            throw error
        }
        _ = try await CortexProcess.runToCompletion(Repository.path("scripts/postgres.sh"), ["stop", cluster], timeout: .seconds(60))
    }

    static func restartUnderLoad(database: String, cluster: String, directory: TemporaryDirectory) async throws {
        let environment = [
            "MODEL_PRICES": "lead-scoring=0.001", "DEMO_CREDITS": "1000", "LOG_LEVEL": "notice", "HOLD_TTL_S": "2",
            "HOLD_SWEEP_INTERVAL_S": "0.2", "DRAIN_TIMEOUT_S": "5",
        ]
        let (cortex, port) = try await LedgerLoadTests.serve(database, directory, environment)
        defer { cortex.terminate() }
        let tally = Tally()
        let progress = Progress()
        try await LedgerLoadTests.withClient { client in
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        // Until 100 requests succeed after the restart, or 4,000 were sent.
                        while !tally.killed, tally.next() < 4000 {
                            let id = "fault-\(UUID().uuidString)"
                            let status = await LedgerLoadTests.score(client, port: port, requestID: id)
                            progress.statuses.withLock { $0.append(status) }
                            guard status == 200 else { continue }
                            tally.succeeded(id)
                            if progress.restarted.load(ordering: .relaxed), progress.afterRestart.add(1, ordering: .relaxed).newValue >= 100
                            {
                                tally.kill()
                            }
                        }
                    }
                }
                group.addTask {
                    // Some load first, then the restart (PostgreSQL drops every connection).
                    while tally.acknowledged.count < 100, !tally.killed { try? await Task.sleep(for: .milliseconds(10)) }
                    let run = try? await CortexProcess.runToCompletion(
                        Repository.path("scripts/postgres.sh"), ["restart", cluster], timeout: .seconds(60))
                    progress.restartStatus.store(run?.status ?? -1, ordering: .relaxed)
                    progress.restarted.store(true, ordering: .relaxed)
                }
            }
        }
        let answered = progress.statuses.withLock { $0 }
        #expect(progress.restartStatus.load(ordering: .relaxed) == 0, "PostgreSQL was restarted")
        // It really went down and came back: its log says it started twice.
        let log = (try? String(contentsOfFile: cluster + "/log", encoding: .utf8)) ?? ""
        #expect(log.components(separatedBy: "ready to accept connections").count - 1 == 2, "\(log.suffix(600))")
        print(
            "PostgreSQL restart under load: \(answered.filter { $0 == 200 }.count) answered 200, \(answered.filter { $0 == 503 }.count) 503"
        )
        let others = answered.filter { $0 != 200 && $0 != 503 }
        #expect(
            others.isEmpty,
            "only 200 and 503 (the database unavailable, nothing charged): \(Dictionary(grouping: others.map { $0.map(String.init) ?? "no answer" }) { $0 }.mapValues(\.count))"
        )
        #expect(progress.afterRestart.load(ordering: .relaxed) >= 100, "the pool reconnected: requests succeed after the restart")
        // Holds of requests that failed go back (HOLD_TTL_S); then stop and read the books.
        #expect((try await LedgerLoadTests.settledMe(port: port)["held"] as? NSNumber)?.intValue == 0)
        // It stops when told. Once in CI its graceful shutdown after the restart waited out the
        // drain timeout (some part still waiting on a connection PostgreSQL had dropped): here
        // the timeout is 5 s and the process must be gone within it and the cancellation after.
        cortex.signal(SIGTERM)
        let exit = try await cortex.waitForExit(timeout: .seconds(60))
        print("PostgreSQL restart under load: exit status after SIGTERM \(exit.map(String.init) ?? "none (still running)")")
        #expect(exit != nil, "the process exits after SIGTERM")
        cortex.terminate()
        let listing = try await IdentityCLITests.run(["credits", "entries", "demo", "--limit", "100000"], database: database)
        var settlements: [String: Int] = [:]
        for row in listing.stdout.split(separator: "\n").dropFirst() {
            let columns = row.split(separator: "\t", omittingEmptySubsequences: false)
            if columns.count > 4, columns[2] == "settle" { settlements[String(columns[4]), default: 0] += 1 }
        }
        let acknowledged = tally.acknowledged
        #expect(acknowledged.filter { settlements[$0] != 1 }.isEmpty, "every 200 has exactly one settlement")
        #expect(settlements.values.allSatisfy { $0 == 1 }, "no request settled twice")
        let verify = try await IdentityCLITests.run(["db", "verify"], database: database)
        #expect(verify.status == 0, "\(verify.stdout)")
    }
}

/// What the load saw: every status, whether PostgreSQL was restarted, and the 200s since.
final class Progress: Sendable {
    let statuses = Mutex<[Int?]>([])
    let restarted = Atomic<Bool>(false)
    let afterRestart = Atomic<Int>(0)
    let restartStatus = Atomic<Int32>(-2)
}

/// The database's disk fills up under a real process: a small tmpfs the test mounts.
@Suite("Faults: the database's disk full (real processes, a tmpfs)")
struct DiskFullTests {
    /// Runs `mount` or `umount` (the tests run as root); `false` when it is not allowed here.
    static func mount(_ arguments: [String]) async throws -> Bool {
        let binary = arguments.first == "-t" ? "/usr/bin/mount" : "/usr/bin/umount"
        return try await CortexProcess.runToCompletion(binary, arguments, timeout: .seconds(30)).status == 0
    }

    @Test("disk full: /ready turns 503 first, billed requests then answer 503 uncharged, and everything recovers when space returns")
    func diskFull() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let disk = directory.file("disk")
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        try #require(try await Self.mount(["-t", "tmpfs", "-o", "size=16m", "tmpfs", disk]), "mounting a tmpfs (the tests run as root)")
        do {
            try await Self.fill(disk: disk, directory: directory)
        } catch {
            _ = try? await Self.mount([disk])
            throw error
        }
        _ = try await Self.mount([disk])
    }

    /// Free bytes on the filesystem holding `path`.
    static func free(_ path: String) -> Int64 {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return -1 }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }

    /// Writes `bytes` of zeros to `path` (appending), stopping early when the disk is full.
    static func write(_ path: String, bytes: Int) {
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else { return }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        let chunk = Data(count: 64 << 10)
        var left = bytes
        while left > 0 {
            do { try handle.write(contentsOf: chunk.prefix(min(left, chunk.count))) } catch { return }
            left -= chunk.count
        }
    }

    static func fill(disk: String, directory: TemporaryDirectory) async throws {
        let database = disk + "/cortex.db"
        let (cortex, port) = try await CortexProcess.serve(
            environment: [
                "DATABASE_URL": "sqlite:" + database, "MIN_FREE_DISK_MB": "4", "READINESS_INTERVAL_S": "0.1",
                "MODEL_PRICES": "lead-scoring=0.001", "DEMO_CREDITS": "1000", "CREDIT_LEASE_HOLDS": "0",
            ],
            directory: directory)
        defer { cortex.terminate() }
        let score = { () throws -> Int in
            try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead)?.status ?? 0
        }
        let ready = { () throws -> Int in try RawHTTPConnection.request(port: port, path: "/ready")?.status ?? 0 }
        #expect(try score() == 200 && ready() == 200)
        var charged = 1

        // Below MIN_FREE_DISK_MB: /ready says so while billed requests still succeed.
        let filler = disk + "/filler"
        Self.write(filler, bytes: Int(Self.free(disk)) - (2 << 20))
        #expect(Self.free(disk) < 4 << 20)
        var readyStatus = 0
        for _ in 0..<100 {
            readyStatus = try ready()
            if readyStatus == 503 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(readyStatus == 503, "the disk check fails below MIN_FREE_DISK_MB")
        let readyBody = try #require(try RawHTTPConnection.request(port: port, path: "/ready")).body
        #expect(readyBody.contains(#""disk":{"ok":false"#), "\(readyBody)")
        #expect(try score() == 200, "billed requests still succeed while there is space")
        charged += 1

        // No space at all: billed requests answer 503 and are not charged.
        Self.write(filler, bytes: Int(Self.free(disk)) + (1 << 20))
        #expect(Self.free(disk) < 64 << 10)
        var statuses: [Int] = []
        for _ in 0..<40 { statuses.append(try score()) }
        #expect(statuses.allSatisfy { $0 == 200 || $0 == 503 }, "\(statuses)")
        #expect(statuses.contains(503), "a full disk refuses billed requests: \(statuses)")
        charged += statuses.filter { $0 == 200 }.count

        // Space back: everything recovers by itself.
        try FileManager.default.removeItem(atPath: filler)
        var recovered = 0
        for _ in 0..<100 {
            recovered = try ready()
            if recovered == 200 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(recovered == 200)
        var after = 0
        for _ in 0..<100 {
            after = try score()
            if after == 200 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(after == 200, "billed requests succeed again")
        charged += 1
        for _ in 0..<5 {
            #expect(try score() == 200)
            charged += 1
        }
        // Exactly the 200s were charged, and the books are whole.
        let me = try await LedgerLoadTests.settledMe(port: port)
        #expect((me["held"] as? NSNumber)?.intValue == 0, "\(me)")
        #expect(((me["usage"] as? [String: Any])?["requests"] as? NSNumber)?.intValue == charged, "\(me)")
        cortex.signal(SIGTERM)
        #expect(try await cortex.waitForExit() == 0)
        let verify = try await IdentityCLITests.run(["db", "verify"], database: database)
        #expect(verify.status == 0, "\(verify.stdout)")
    }
}
