import CortexRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CortexServer

/// Metrics an operator can read: a `# HELP` line for every family, the help declared once and the
/// docs' table naming the same metrics, and the Prometheus client conventions' `process_*`.
@Suite("Metric help and process metrics")
struct MetricHelpTests {
    @Test("every family /metrics exports has its # HELP line right before its # TYPE line")
    func helpEverywhere() async throws {
        let server = try await TestServer.make(models: Repository.imageModels + [ModelSource(path: Repository.leadScoring)]) {
            $0.traffic.weightB = 1
            $0.traffic.shadowEnabled = true
        }
        try await server.test { client in
            _ = try await client.post("/api/v1/score", json: LedgerLoadTests.lead)
            _ = try await client.post("/v1/infer", json: try TrafficSplitTests.digit())
            _ = try await client.post("/v2/models/nowhere/infer", json: "{}")
            _ = try await client.get("/status/summary")
            let text = try await client.get("/metrics").body.text
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var families = 0
            for (index, line) in lines.enumerated() where line.hasPrefix("# TYPE ") {
                families += 1
                let name = line.dropFirst("# TYPE ".count).prefix { $0 != " " }
                #expect(index > 0 && lines[index - 1].hasPrefix("# HELP \(name) "), "\(name) has no # HELP line")
            }
            #expect(families >= 25, "\(families) families exported")
            #expect(!text.contains("\n\n\n"), "the exposition's lines are kept as they were")
        }
    }

    @Test("the declared help names exactly the metrics of docs/operations.md's table")
    func documented() throws {
        let text = try String(contentsOfFile: Repository.path("docs/operations.md"), encoding: .utf8)
        let start = try #require(text.range(of: "| metric | type | labels | meaning |"))
        let table = text[start.upperBound...].split(separator: "\n").dropFirst().prefix { $0.hasPrefix("|") }
        let names = Set(table.compactMap { row in row.split(separator: "`").dropFirst().first.map(String.init) })
        #expect(
            names == Set(MetricHelp.texts.keys),
            "only in the docs: \(names.subtracting(MetricHelp.texts.keys)); only declared: \(Set(MetricHelp.texts.keys).subtracting(names))"
        )
    }

    @Test("process_* metrics: resident memory, descriptors, a start time in the past, CPU seconds that only go up")
    func processMetrics() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let first = try await client.get("/metrics").body.text
            for _ in 0..<50 { _ = try await client.post("/api/v1/score", json: LedgerLoadTests.lead) }
            let second = try await client.get("/metrics").body.text
            let resident = try #require(MetricsTests.value(of: "process_resident_memory_bytes", in: second))
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let now = Double(try #require(ResourceUsage.residentBytes(status: status)))
            #expect(resident > 1_048_576 && abs(resident - now) / now < 0.5, "\(resident) against /proc's \(now)")
            let open = try #require(MetricsTests.value(of: "process_open_fds", in: second))
            #expect(open > 0 && open < (MetricsTests.value(of: "process_max_fds", in: second) ?? 0))
            let started = try #require(MetricsTests.value(of: "process_start_time_seconds", in: second))
            #expect(started <= Date().timeIntervalSince1970 && started > Date().timeIntervalSince1970 - 86_400)
            let cpu = (
                try #require(MetricsTests.value(of: "process_cpu_seconds_total", in: first)),
                try #require(MetricsTests.value(of: "process_cpu_seconds_total", in: second))
            )
            #expect(cpu.0 > 0 && cpu.1 >= cpu.0)
            #expect((MetricsTests.value(of: "process_virtual_memory_bytes", in: second) ?? 0) >= resident)
        }
    }

    @Test("/proc/self/stat's start time and virtual size, past a command name with spaces")
    func statFields() {
        let stat = "4242 (cortex (worker) 1) S 1 4242 4242 0 -1 4194560 9 0 0 0 1500 250 0 0 20 0 12 0 777 123456 1"
        let fields = ProcessMetrics.startAndSize(stat: stat)
        #expect(fields?.startTicks == 777 && fields?.virtualBytes == 123_456)
    }

    @Test("the request histogram reaches 120 s (LLM answers take that long); the model histograms stay at 10 s")
    func longBuckets() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            _ = try await client.post("/api/v1/score", json: LedgerLoadTests.lead)
            let lines = try await client.get("/metrics").body.text.split(separator: "\n")
            func bounds(_ family: String) -> [Double] {
                lines.filter { $0.hasPrefix(family + "_bucket{") }.compactMap { line in
                    line.range(of: #"le=""#).flatMap { Double(line[$0.upperBound...].prefix { $0 != "\"" }) }
                }.filter(\.isFinite)
            }
            #expect(bounds("http_request_duration_seconds").max() == 120 && bounds("http_request_duration_seconds").contains(60))
            #expect(bounds("inference_latency_seconds").max() == 10)
        }
    }
}
