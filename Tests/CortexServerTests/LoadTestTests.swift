import Foundation
import Testing

/// The load tests as the A/B image service's runbook names them (load/k6/healthz.js, infer.js),
/// and `make load-test` (scripts/load-test.sh: the same scenarios with locust, JSON results and a
/// plot), run briefly against a real Cortex process.
@Suite("Load tests: the k6 scripts and make load-test", .serialized)
struct LoadTestTests {
    @Test("the k6 scripts parse, default to Cortex's port, hit its routes, and carry the digit image as the file holds it")
    func k6Scripts() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let png = try Data(contentsOf: URL(fileURLWithPath: Repository.path("models/digits/digit3_0.png"))).base64EncodedString()
        for (script, route) in [("healthz", "/healthz"), ("infer", "/v1/infer")] {
            let text = try String(contentsOfFile: Repository.path("load/k6/\(script).js"), encoding: .utf8)
            // k6 scripts are ES modules: Node checks their syntax as one.
            try text.write(toFile: directory.file("\(script).mjs"), atomically: true, encoding: .utf8)
            let (status, _, stderr) = try await CortexProcess.runToCompletion(
                "/usr/bin/env", ["node", "--check", directory.file("\(script).mjs")], timeout: .seconds(30))
            #expect(status == 0, "\(script).js: \(stderr)")
            #expect(text.contains("'http://localhost:8000'") && text.contains("${BASE_URL}\(route)"), "\(script).js")
        }
        let infer = try String(contentsOfFile: Repository.path("load/k6/infer.js"), encoding: .utf8)
        #expect(infer.contains("const DIGIT_3_PNG = '\(png)';"), "the inline image is models/digits/digit3_0.png")
    }

    @Test("make load-test's script runs both scenarios against a running Cortex with no failures, writes JSON results and a PNG plot")
    func loadTestScript() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: ["LOG_LEVEL": "notice"], directory: directory)
        defer { cortex.terminate() }
        let results = directory.file("results")
        let (status, stdout, stderr) = try await CortexProcess.runToCompletion(
            Repository.path("scripts/load-test.sh"), [],
            // Paced (LOAD_WAIT_S): the other suites run beside this one, and an unpaced load would starve them.
            environment: [
                "CORTEX_URL": "http://127.0.0.1:\(port)", "DURATION": "5", "USERS": "2", "LOAD_WAIT_S": "0.01", "RESULTS": results,
            ],
            timeout: .seconds(600))
        #expect(status == 0, "\(stdout)\(stderr)")
        for (scenario, route) in [("healthz", "/healthz"), ("infer", "/v1/infer")] {
            let data = try Data(contentsOf: URL(fileURLWithPath: results + "/\(scenario).json"))
            let stats = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
            let entry = try #require(stats.first { $0["name"] as? String == route }, "\(stats)")
            #expect((entry["num_requests"] as? Int ?? 0) > 10 && entry["num_failures"] as? Int == 0, "\(scenario): \(entry)")
            let timeline = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: results + "/\(scenario)_timeline.json")))
                    as? [[String: Any]])
            #expect(timeline.count >= 3, "a point per second: \(timeline)")
            let perSecond = timeline.reduce(0) { $0 + ($1["requests"] as? Int ?? 0) }
            #expect(perSecond == entry["num_requests"] as? Int, "the seconds add up to the total")
            #expect(timeline.allSatisfy { ($0["p99_ms"] as? Double ?? -1) >= ($0["p50_ms"] as? Double ?? 0) })
        }
        let plot = try Data(contentsOf: URL(fileURLWithPath: results + "/load-test.png"))
        #expect(plot.starts(with: [0x89, 0x50, 0x4E, 0x47]) && plot.count > 10_000, "a PNG picture")
    }
}
