import CortexTestSupport
import Foundation
import Testing

@testable import CortexServer

/// The Prometheus rules (prometheus/*.yml) checked by promtool, their runbook links, and a real
/// Prometheus (Debian's, `scripts/prometheus.sh`) scraping a real Cortex process with them loaded.
@Suite("Prometheus rules and a real Prometheus scraping Cortex", .serialized)
struct PrometheusRulesTests {
    static let rules = ["prometheus/recording_rules.yml", "prometheus/alert_rules.yml"]

    static func promtool(_ arguments: [String]) async throws -> (status: Int32?, output: String) {
        try await CortexProcess.output("/usr/bin/promtool", arguments, timeout: .seconds(60))
    }

    @Test("promtool: the rule files are valid, and every alert fires on its runbook's condition and only then")
    func promtoolChecksAndUnitTests() async throws {
        let check = try await Self.promtool(["check", "rules"] + Self.rules.map(Repository.path))
        #expect(check.status == 0, "\(check.output)")
        let unit = try await Self.promtool(["test", "rules", Repository.path("prometheus/tests/alert_rules_test.yml")])
        #expect(unit.status == 0 && unit.output.contains("SUCCESS"), "\(unit.output)")
    }

    /// Debian's Prometheus on a free loopback port, with `config` written to `directory`/prometheus.yml
    /// and its data in `directory`/tsdb.
    static func startPrometheus(config: String, in directory: TemporaryDirectory) throws -> (CortexProcess, port: Int) {
        try config.write(toFile: directory.file("prometheus.yml"), atomically: true, encoding: .utf8)
        let port = try LoopbackPort.free()
        let prometheus = try CortexProcess(
            arguments: [
                "--config.file=\(directory.file("prometheus.yml"))", "--storage.tsdb.path=\(directory.file("tsdb"))",
                "--web.listen-address=127.0.0.1:\(port)",
            ], environment: [:], binary: "/usr/bin/prometheus")
        return (prometheus, port)
    }

    /// GitHub's anchor for a Markdown heading: lower case, spaces to '-', punctuation dropped.
    static func anchor(_ heading: String) -> String {
        String(
            heading.lowercased().compactMap { character -> Character? in
                if character == " " { return "-" }
                return character.isLetter || character.isNumber || character == "-" || character == "_" ? character : nil
            })
    }

    @Test("every alert names a runbook section of docs/operations.md that exists, and the docs list every alert")
    func runbookLinks() throws {
        let rules = try String(contentsOfFile: Repository.path("prometheus/alert_rules.yml"), encoding: .utf8)
        let operations = try String(contentsOfFile: Repository.path("docs/operations.md"), encoding: .utf8)
        let anchors = Set(
            operations.split(separator: "\n").filter { $0.hasPrefix("#") }.map { Self.anchor(String($0.drop { $0 == "#" }.dropFirst())) })
        let alerts = rules.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.hasPrefix("- alert: ") ? String(trimmed.dropFirst("- alert: ".count)) : nil
        }
        let links = rules.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.hasPrefix("runbook: docs/operations.md#") ? String(trimmed.dropFirst("runbook: docs/operations.md#".count)) : nil
        }
        #expect(alerts.count == 7 && links.count == alerts.count, "\(alerts) \(links)")
        for link in links { #expect(anchors.contains(link), "docs/operations.md has no section #\(link)") }
        for alert in alerts { #expect(operations.contains("`\(alert)`"), "docs/operations.md does not list \(alert)") }
    }

    /// How many series `expression` has on the test Prometheus (asked as `count(...)`, so the answer
    /// stays one short line whatever the result's size).
    static func seriesCount(_ expression: String, port: Int) throws -> Int {
        let result = try query("count(\(expression))", port: port)
        return (result.first?["value"] as? [Any])?.last.flatMap { ($0 as? String).flatMap(Int.init) } ?? 0
    }

    /// `GET /api/v1/query?query=...` on the test Prometheus: the result's series.
    static func query(_ expression: String, port: Int) throws -> [[String: Any]] {
        (try answer(expression, port: port)["data"] as? [String: Any])?["result"] as? [[String: Any]] ?? []
    }

    /// Prometheus's whole answer to a query: `status` (`success` or `error`), `data` or `error`.
    static func answer(_ expression: String, port: Int) throws -> [String: Any] {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let encoded = expression.addingPercentEncoding(withAllowedCharacters: allowed) ?? expression
        let body = try RawHTTPConnection.request(port: port, path: "/api/v1/query?query=\(encoded)", demoKey: "")?.body ?? ""
        return try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
    }

    /// The metric names a PromQL expression reads: identifiers outside strings, selectors, ranges
    /// and grouping clauses that are not functions or keywords.
    static func metricNames(in expression: String) -> Set<String> {
        var text = expression
        for pattern in [#""[^"]*""#, #"\{[^}]*\}"#, #"\[[^\]]*\]"#, #"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"#] {
            text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
        }
        let keywords: Set<String> = ["and", "or", "unless", "bool", "offset"]
        var names = Set<String>()
        var scanner = text[...]
        while let range = scanner.range(of: #"[a-zA-Z_:][a-zA-Z0-9_:]*"#, options: .regularExpression) {
            let name = String(scanner[range])
            let after = scanner[range.upperBound...].drop { $0 == " " }
            if after.first != "(", !keywords.contains(name) { names.insert(name) }
            scanner = scanner[range.upperBound...]
        }
        return names
    }

    @Test(
        "a real Prometheus scraping a real Cortex: every recording rule evaluates to a series, and the metrics the runbooks grep for are there with their labels"
    )
    func realPrometheus() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: ["MODEL_PRICES": "lead-scoring=0.001"], directory: directory)
        defer { cortex.terminate() }
        // The rules as shipped, evaluated every second instead of every 30 s.
        var ruleFiles: [String] = []
        for rule in Self.rules {
            let text = try String(contentsOfFile: Repository.path(rule), encoding: .utf8)
            let copy = directory.file((rule as NSString).lastPathComponent)
            try text.replacingOccurrences(of: "interval: 30s", with: "interval: 1s").write(toFile: copy, atomically: true, encoding: .utf8)
            ruleFiles.append(copy)
        }
        let config = """
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            rule_files: [\(ruleFiles.map { "\"\($0)\"" }.joined(separator: ", "))]
            scrape_configs:
              - job_name: cortex
                static_configs: [{targets: ["127.0.0.1:\(port)"]}]
            """
        let (prometheus, prometheusPort) = try Self.startPrometheus(config: config, in: directory)
        defer { prometheus.terminate() }
        let checked = try await Self.promtool(["check", "config", directory.file("prometheus.yml")])
        #expect(checked.status == 0, "\(checked.output)")

        let recorded = [
            "route_status:http_requests:rate5m", "route:http_errors:ratio_rate5m", "job:http_errors:ratio_rate5m",
            "route:http_request_duration_seconds:p50_5m", "route:http_request_duration_seconds:p99_5m",
            "model_variant:inference_latency_seconds:p50_5m", "model_variant:inference_latency_seconds:p99_5m",
            "model_variant_outcome:inference_outcome:rate5m", "model:credits_spent:rate5m",
        ]
        let rulesText = try String(contentsOfFile: Repository.path("prometheus/recording_rules.yml"), encoding: .utf8)
        #expect(rulesText.components(separatedBy: "- record: ").count - 1 == recorded.count, "every recording rule is checked here")
        // Billed scores, a refused one, and Open Inference Protocol requests, kept coming while Prometheus scrapes.
        let deadline = ContinuousClock.now + .seconds(90)
        var missing = recorded
        while !missing.isEmpty, ContinuousClock.now < deadline {
            _ = try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead)
            _ = try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: #"{"features":{"nope":1}}"#)
            missing = missing.filter { ((try? Self.seriesCount($0, port: prometheusPort)) ?? 0) == 0 }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(missing.isEmpty, "recording rules without a series: \(missing); prometheus said: \(prometheus.stderr.suffix(2000))")
        let ratio = try Self.query("job:http_errors:ratio_rate5m", port: prometheusPort).first?["value"] as? [Any]
        #expect(ratio?.last as? String == "0", "no 5xx: the ratio is 0, not missing")

        // What the runbooks grep /metrics for, as series with their labels.
        for series in [
            #"http_requests_total{route="/api/v1/score",status="200",method="POST"}"#,
            #"http_requests_total{route="/api/v1/score",status="422"}"#,
            #"inference_outcome_total{model="lead-scoring",outcome="success"}"#,
            #"inference_outcome_total{model="lead-scoring",outcome="invalid_input"}"#,
            #"model_prediction_errors{model="lead-scoring",provider="local"}"#, #"model_prediction_latency_count{model="lead-scoring"}"#,
            #"credits_spent_total{model="lead-scoring"}"#, #"status_ready{service="backend"}"#, #"lead_enrich_total"#,
            #"lead_outcome_total"#, #"model_ready{model="lead-scoring"}"#, #"cortex_build_info"#, #"api_tenants_count"#,
            #"process_resident_memory_bytes"#, #"process_open_fds"#, #"up{job="cortex"}"#,
        ] {
            #expect(try Self.seriesCount(series, port: prometheusPort) > 0, "\(series) is not in Prometheus")
        }
        #expect(try Self.seriesCount(#"up{job="cortex"} == 1"#, port: prometheusPort) == 1)

        // The dashboard: every panel's query parses and reads only metrics Cortex exports or records.
        let dashboard =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: Repository.path("grafana/dashboards/edge-serve-ab.json")))) as? [String: Any]
        let panels = dashboard?["panels"] as? [[String: Any]] ?? []
        let expressions = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(expressions.count >= 25 && panels.filter { $0["type"] as? String == "timeseries" }.count >= 18)
        let known = Set(MetricHelp.texts.keys).union(recorded).union(["up"])
        var read = Set<String>()
        for expression in expressions {
            let concrete = expression.replacingOccurrences(of: "$__rate_interval", with: "1m")
            let answer = try Self.answer(concrete, port: prometheusPort)
            #expect(answer["status"] as? String == "success", "\(expression): \(answer["error"] ?? "")")
            let names = Self.metricNames(in: concrete)
            #expect(!names.isEmpty, "\(expression) reads no metric")
            for name in names {
                let base = ["_bucket", "_sum", "_count"].reduce(name) { $0.hasSuffix($1) ? String($0.dropLast($1.count)) : $0 }
                #expect(known.contains(base), "\(expression) reads \(name), which Cortex neither exports nor records")
                read.insert(base)
            }
        }
        // What the runbooks and the issue ask the dashboard to show.
        for family in [
            "http_requests_total", "traffic_requests_total", "shadow_comparisons_total", "canary_weight", "llm_time_to_first_token_seconds",
            "llm_path", "rate_limit_backend_up", "status_ready", "model:credits_spent:rate5m",
            "model_variant:inference_latency_seconds:p99_5m",
        ] {
            #expect(read.contains(family), "the dashboard shows no \(family)")
        }
        #expect(Self.metricNames(in: #"sum by (route) (rate(a_total{x="y"}[5m])) / on (route) b"#) == ["a_total", "b"])
    }
}
