import CortexCore
import Foundation
import Testing

@testable import CortexServer

/// OpenTelemetry traces through real processes: Cortex exports over OTLP/HTTP to a receiver on
/// loopback that decodes the protobuf with the official definitions (Tests/Python/otlp_receiver.py).
@Suite("Tracing with OpenTelemetry (real processes, an OTLP/HTTP receiver)", .serialized)
struct TracingTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let clientSpan = "00f067aa0ba902b7"
    static var traceparent: String { "00-\(traceID)-\(clientSpan)-01" }

    /// A Cortex process exporting to `receiver`, with a price on the scoring model so requests hold and settle.
    static func tracedCortex(
        _ receiver: PythonServer, directory: TemporaryDirectory, extra: [String: String] = [:]
    ) async throws -> (CortexProcess, port: Int) {
        try await CortexProcess.serve(
            environment: [
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50", "MODEL_PRICES": "lead-scoring=0.001",
            ].merging(extra) { $1 }, directory: directory)
    }

    /// The spans received so far, waiting (up to 30 s) until `done` holds for them.
    static func spans(from receiver: PythonServer, until done: ([[String: Any]]) -> Bool) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let spans = try receiver.get("/spans")["spans"] as? [[String: Any]] ?? []
            if done(spans) || ContinuousClock.now > deadline { return spans }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    static func named(_ name: String, in spans: [[String: Any]]) -> [String: Any]? {
        spans.first { $0["name"] as? String == name }
    }

    @Test(
        "one billed request is one trace: the client's traceparent is the request span's parent, auth, rate_limit, hold, inference (with batch size) and settle are its children, and every log line carries trace_id"
    )
    func oneRequestOneTrace() async throws {
        let receiver = try await PythonServer("otlp_receiver.py")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await Self.tracedCortex(receiver, directory: directory)
        defer { cortex.terminate() }
        let answer = try RawHTTPConnection.request(
            port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead,
            headers: [("traceparent", Self.traceparent), ("X-Request-ID", "traced-request-1")])
        #expect(answer?.status == 200, "\(answer?.body ?? "")")
        let steps = ["auth", "rate_limit", "hold", "inference", "settle"]
        let spans = try await Self.spans(from: receiver) { spans in
            steps.allSatisfy { step in spans.contains { $0["name"] as? String == step } }
        }.filter { $0["trace_id"] as? String == Self.traceID }

        let request = try #require(Self.named("POST /api/v1/score", in: spans), "\(spans)")
        #expect(request["parent_span_id"] as? String == Self.clientSpan, "a child of the client's span")
        #expect(request["kind"] as? String == "SPAN_KIND_SERVER" && request["service"] as? String == "cortex")
        let attributes = request["attributes"] as? [String: Any] ?? [:]
        #expect(attributes["http.response.status_code"] as? Int == 200 && attributes["cortex.request_id"] as? String == "traced-request-1")
        for step in steps {
            let span = try #require(Self.named(step, in: spans), "\(step) in \(spans.map { $0["name"] ?? "" })")
            #expect(span["parent_span_id"] as? String == request["span_id"] as? String, "\(step) is the request's child")
        }
        let inference = try #require(Self.named("inference", in: spans)?["attributes"] as? [String: Any])
        #expect(inference["cortex.model"] as? String == "lead-scoring")
        #expect((inference["cortex.batch_size"] as? Int ?? 0) >= 1, "\(inference)")
        #expect(spans.count == steps.count + 1, "one trace, nothing else in it: \(spans.map { $0["name"] ?? "" })")

        // The request's log lines name the trace and their span.
        let lines = cortex.logEvents.filter { $0["request_id"] as? String == "traced-request-1" }
        #expect(lines.count >= 2)
        #expect(lines.allSatisfy { $0["trace_id"] as? String == Self.traceID && ($0["span_id"] as? String)?.count == 16 }, "\(lines)")
        // Probes are not traced: a request after one is, and it arrives alone.
        _ = try RawHTTPConnection.request(port: port, path: "/health")
        _ = try RawHTTPConnection.request(port: port, path: "/v2")
        let later = try await Self.spans(from: receiver) { spans in spans.contains { $0["name"] as? String == "GET /v2" } }
        #expect(later.contains { $0["name"] as? String == "GET /v2" })
        #expect(!later.contains { ($0["name"] as? String)?.contains("/health") == true })
    }

    @Test(
        "across processes: a remote model endpoint continues the trace under the inference span; with tracing off the client's traceparent is passed on unchanged"
    )
    func acrossProcesses() async throws {
        let receiver = try await PythonServer("otlp_receiver.py")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let remoteDirectory = try TemporaryDirectory()
        defer { remoteDirectory.remove() }
        let (remote, remotePort) = try await Self.tracedCortex(
            receiver, directory: remoteDirectory, extra: ["OTEL_SERVICE_NAME": "cortex-remote", "MODEL_PRICES": ""])
        defer { remote.terminate() }
        let endpoint = [
            "MODEL_ENDPOINT_PROVIDER": "remote", "MODEL_ENDPOINT_URL": "http://127.0.0.1:\(remotePort)",
            "MODEL_ENDPOINT_TIMEOUT_MS": "15000",
        ]

        let (front, port) = try await Self.tracedCortex(receiver, directory: directory, extra: endpoint)
        let answer = try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead)
        #expect(answer?.status == 200, "\(answer?.body ?? "")")
        let spans = try await Self.spans(from: receiver) { spans in
            spans.contains { $0["service"] as? String == "cortex-remote" && $0["kind"] as? String == "SPAN_KIND_SERVER" }
                && spans.contains { $0["name"] as? String == "inference" && $0["service"] as? String == "cortex" }
        }
        front.terminate()
        let inference = try #require(spans.first { $0["name"] as? String == "inference" && $0["service"] as? String == "cortex" })
        let served = try #require(
            spans.first { $0["service"] as? String == "cortex-remote" && $0["kind"] as? String == "SPAN_KIND_SERVER" })
        #expect(served["trace_id"] as? String == inference["trace_id"] as? String, "one trace across both processes")
        #expect(served["parent_span_id"] as? String == inference["span_id"] as? String, "the remote's request is the inference's child")

        // The front without tracing: the remote sees the client's own trace and parent.
        let untracedDirectory = try TemporaryDirectory()
        defer { untracedDirectory.remove() }
        let (untraced, untracedPort) = try await CortexProcess.serve(environment: endpoint, directory: untracedDirectory)
        defer { untraced.terminate() }
        let passed = try RawHTTPConnection.request(
            port: untracedPort, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead,
            headers: [("traceparent", Self.traceparent)])
        #expect(passed?.status == 200)
        let all = try await Self.spans(from: receiver) { spans in spans.contains { $0["trace_id"] as? String == Self.traceID } }
        let continued = try #require(all.first { $0["trace_id"] as? String == Self.traceID })
        #expect(continued["service"] as? String == "cortex-remote" && continued["parent_span_id"] as? String == Self.clientSpan)
        #expect(!untraced.logEvents.contains { $0["trace_id"] != nil }, "tracing off: no trace ids in the logs")
    }

    @Test("an LLM provider gets the llm span's traceparent, in the request's trace")
    func llmPropagation() async throws {
        let receiver = try await PythonServer("otlp_receiver.py")
        let upstream = try await FakeLLMServer(.answer("Hello", usage: (prompt: 3, completion: 1)), models: ["fake-model"])
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await Self.tracedCortex(
            receiver, directory: directory,
            extra: [
                "LLM_PRIMARY_URL": upstream.url, "LLM_PRIMARY_KIND": "openai", "LLM_PRIMARY_MODEL": "fake-model",
                "PRIMARY_POLL_INTERVAL_S": "0.05",
            ])
        defer { cortex.terminate() }
        // The primary serves once its model list shows the model.
        try await CortexProcess.waitForPrimaryLLM(port: port)
        // On a thread of its own: the fake provider answering it runs in this process.
        let answer = try await RawHTTPConnection.requestOnThread(
            port: port, method: "POST", path: "/v1/chat/completions",
            body: #"{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}"#, headers: [("traceparent", Self.traceparent)])
        #expect(answer?.status == 200, "\(answer?.body ?? "")")
        let spans = try await Self.spans(from: receiver) { spans in spans.contains { $0["name"] as? String == "llm" } }
        let llm = try #require(spans.first { $0["name"] as? String == "llm" })
        #expect(llm["trace_id"] as? String == Self.traceID && llm["kind"] as? String == "SPAN_KIND_CLIENT")
        let sent = try #require(upstream.traceparents.last ?? nil)
        #expect(sent.hasPrefix("00-\(Self.traceID)-\(llm["span_id"] as? String ?? "?")-"), "\(sent)")
    }

    @Test("traceparent: only the W3C form is passed on; bad tracing settings stop start-up naming them")
    func validation() throws {
        #expect(TraceParent.isValid(Self.traceparent))
        for bad in [
            "", "00-\(Self.traceID)-\(Self.clientSpan)", "ff-\(Self.traceID)-\(Self.clientSpan)-01",
            "00-00000000000000000000000000000000-\(Self.clientSpan)-01", "00-\(Self.traceID)-0000000000000000-01",
            "00-\(Self.traceID.uppercased())-\(Self.clientSpan)-01", "00-\(Self.traceID)-\(Self.clientSpan)-01 ",
        ] {
            #expect(!TraceParent.isValid(bad), "\(bad)")
        }
        for (environment, key) in [
            (["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"], "OTEL_EXPORTER_OTLP_ENDPOINT"),
            (["OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"], "OTEL_EXPORTER_OTLP_PROTOCOL"),
            (["OTEL_TRACES_SAMPLER": "sometimes"], "OTEL_TRACES_SAMPLER"),
            (["OTEL_TRACES_SAMPLER_ARG": "1.5"], "OTEL_TRACES_SAMPLER_ARG"),
        ] {
            do {
                _ = try CortexConfiguration.load(file: nil, environment: environment)
                Issue.record("\(environment) loaded")
            } catch let error as ConfigurationError {
                #expect(error.key == key, "\(error)")
            }
        }
    }
}
