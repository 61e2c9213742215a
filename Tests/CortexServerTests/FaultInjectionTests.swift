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
            "HOLD_SWEEP_INTERVAL_S": "0.2",
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
        var held: Int? = nil
        for _ in 0..<100 {
            held = (try LedgerLoadTests.me(port: port)["held"] as? NSNumber)?.intValue
            if held == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(held == 0)
        cortex.signal(SIGTERM)
        #expect(try await cortex.waitForExit() == 0)
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
