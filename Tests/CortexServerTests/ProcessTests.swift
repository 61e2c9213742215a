import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Behaviour of the real binary: start-up output, signals, exit codes. Serialized: each test owns a process.
@Suite("cortex process", .serialized)
struct ProcessTests {
    static let inferBody =
        #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[250,40.5,1,14,6,1,2,1,4,1]}]}"#

    @Test("serve prints the database file, answers probes, and exits 0 on SIGTERM")
    func startAndStop() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: [:], directory: directory)
        defer { cortex.terminate() }
        #expect(cortex.stdout.hasPrefix("USING DB FILE: \(directory.file("cortex.db"))\n"))
        #expect(try RawHTTPConnection.request(port: port, path: "/health")?.status == 200)
        #expect(try RawHTTPConnection.request(port: port, path: "/ready")?.status == 200)
        let inferred = try RawHTTPConnection.request(
            port: port, method: "POST", path: "/v2/models/lead-scoring/infer", body: Self.inferBody)
        #expect(inferred?.status == 200)
        cortex.signal(SIGTERM)
        // Well under the default DRAIN_TIMEOUT_S of 30: an idle server stops at once.
        #expect(try await cortex.waitForExit(timeout: .seconds(10)) == 0)
        let events = cortex.logEvents.compactMap { $0["event"] as? String }
        #expect(events.contains("REQ_START"))
        #expect(events.contains("INFERENCE_SUCCESS"))
        #expect(events.contains("DRAIN_START"))
        #expect(events.last == "SERVER_STOPPED")
    }

    @Test("on SIGTERM /ready turns 503 at once while the listener drains, and the process exits 0")
    func readyFailsWhileDraining() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: ["DRAIN_DELAY_S": "3"], directory: directory)
        defer { cortex.terminate() }
        #expect(try RawHTTPConnection.request(port: port, path: "/ready")?.status == 200)
        cortex.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        let ready = try RawHTTPConnection.request(port: port, path: "/ready")
        #expect(ready?.status == 503)
        #expect(ready?.body.contains("\"draining\"") == true)
        #expect(try RawHTTPConnection.request(port: port, path: "/health")?.status == 200)
        #expect(try await cortex.waitForExit() == 0)
    }

    @Test(
        "a database made read-only turns /ready 503 naming the database, and back to 200 when writable",
        .enabled(if: getuid() == 0, "needs root to run the server as an unprivileged user, for whom file modes apply")
    )
    func readOnlyDatabase() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // The server runs as `nobody` and owns its directory; the test, as root, flips the file's mode.
        // Binary and model are copied in, since the checkout may sit under a directory `nobody` cannot enter.
        chown(directory.path, 65534, 65534)
        let binary = directory.file("cortex")
        try FileManager.default.copyItem(atPath: CortexProcess.binary, toPath: binary)
        try FileManager.default.copyItem(atPath: Repository.leadScoring, toPath: directory.file("lead-scoring"))
        let (cortex, port) = try await CortexProcess.serve(
            environment: ["MODEL_PATH": directory.file("lead-scoring")],
            directory: directory,
            user: 65534,
            binary: binary,
            workingDirectory: directory.path
        )
        defer { cortex.terminate() }
        let database = directory.file("cortex.db")
        #expect(try RawHTTPConnection.request(port: port, path: "/ready")?.status == 200)
        chmod(database, 0o444)
        let readOnly = try RawHTTPConnection.request(port: port, path: "/ready")
        #expect(readOnly?.status == 503)
        #expect(readOnly?.body.contains(#""failing":["database"]"#) == true)
        #expect(readOnly?.body.contains("not writable") == true)
        #expect(try RawHTTPConnection.request(port: port, path: "/health")?.status == 200)
        chmod(database, 0o644)
        #expect(try RawHTTPConnection.request(port: port, path: "/ready")?.status == 200)
        cortex.signal(SIGTERM)
        #expect(try await cortex.waitForExit() == 0)
    }

    @Test("SIGINT drains the same way")
    func interrupt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, _) = try await CortexProcess.serve(environment: [:], directory: directory)
        defer { cortex.terminate() }
        cortex.signal(SIGINT)
        #expect(try await cortex.waitForExit() == 0)
    }

    @Test("a request in flight when SIGTERM arrives still completes with 200")
    func inFlightRequestFinishes() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: ["DRAIN_TIMEOUT_S": "10"], directory: directory)
        defer { cortex.terminate() }
        let connection = try RawHTTPConnection(port: port)
        defer { connection.close() }
        let body = Self.inferBody
        let half = body.utf8.count / 2
        connection.send(
            "POST /v2/models/lead-scoring/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: \(RawHTTPConnection.demoKey)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                + String(body.prefix(half))
        )
        try await cortex.waitForRequestStart()
        cortex.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(500))
        #expect(cortex.process.isRunning, "the server must wait for the request in flight")
        connection.send(String(body.dropFirst(half)))
        let response = connection.readResponse()
        #expect(response?.status == 200)
        #expect(response?.body.contains("predictions") == true)
        #expect(try await cortex.waitForExit() == 0)
    }

    @Test("a request that never finishes is cut off after DRAIN_TIMEOUT_S and the process still exits 0")
    func drainTimeoutBounds() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: ["DRAIN_TIMEOUT_S": "1"], directory: directory)
        defer { cortex.terminate() }
        let connection = try RawHTTPConnection(port: port)
        defer { connection.close() }
        connection.send(
            "POST /v2/models/lead-scoring/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: \(RawHTTPConnection.demoKey)\r\nContent-Length: 1000\r\n\r\n{\"inputs\":"
        )
        try await cortex.waitForRequestStart()
        cortex.signal(SIGTERM)
        #expect(try await cortex.waitForExit(timeout: .seconds(15)) == 0)
        // The server's own clock, not this test's: a busy test process may oversleep, the log does not.
        let events = cortex.logEvents
        let started = try #require(events.first { $0["event"] as? String == "DRAIN_START" }.flatMap(Self.timestamp))
        let cutOff = try #require(events.first { $0["event"] as? String == "DRAIN_TIMEOUT" }.flatMap(Self.timestamp))
        #expect(cutOff.timeIntervalSince(started) >= 0.9, "the request was waited for, up to DRAIN_TIMEOUT_S")
    }

    /// The `ts` of a JSON log line.
    static func timestamp(_ event: [String: Any]) -> Date? {
        guard let text = event["ts"] as? String else { return nil }
        return try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))
    }

    @Test(
        "an invalid setting stops start-up with the key named and a non-zero exit",
        arguments: ["PORT=abc", "LOG_LEVEL=loud", "MAX_BODY_BYTES=-5"])
    func invalidSetting(assignment: String) async throws {
        let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
        let cortex = try CortexProcess(arguments: ["serve"], environment: [parts[0]: parts[1]])
        defer { cortex.terminate() }
        let status = try await cortex.waitForExit()
        #expect(status != nil && status != 0)
        #expect(cortex.stderr.contains(parts[0]))
        #expect(cortex.stderr.contains(parts[1]))
    }

    @Test("config check accepts a good file and names the bad key of a bad one")
    func configCheck() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let good = try directory.write("good.yaml", "server:\n  port: 9100\nmodels:\n  - path: models/lead-scoring\n")
        let ok = try CortexProcess(arguments: ["config", "check", "--config", good], environment: [:])
        #expect(try await ok.waitForExit() == 0)
        #expect(ok.stdout.contains("server.port: 9100"))
        #expect(ok.stdout.contains("configuration OK"))

        // CORTEX_CONFIG names the file when --config is absent.
        let viaEnvironment = try CortexProcess(arguments: ["config", "check"], environment: ["CORTEX_CONFIG": good])
        #expect(try await viaEnvironment.waitForExit() == 0)
        #expect(viaEnvironment.stdout.contains("server.port: 9100"))

        let bad = try directory.write("bad.yaml", "server:\n  port: ninety\n")
        let failed = try CortexProcess(arguments: ["config", "check", "--config", bad], environment: [:])
        let status = try await failed.waitForExit()
        #expect(status != nil && status != 0)
        #expect(failed.stderr.contains("server.port"))

        // A secret from a file (a mounted Kubernetes Secret): listed as set, never shown; with
        // the variable as well, start-up stops naming both (exit 78).
        let token = try directory.write("admin-token", "file-admin-token-0123456789\n")
        let secret = try CortexProcess(arguments: ["config", "check"], environment: ["ADMIN_TOKEN_FILE": token])
        #expect(try await secret.waitForExit() == 0)
        #expect(secret.stdout.contains("auth.admin_token: set") && !secret.stdout.contains("file-admin-token"))
        let both = try CortexProcess(
            arguments: ["config", "check"], environment: ["ADMIN_TOKEN_FILE": token, "ADMIN_TOKEN": "env-admin-token-0123456789"])
        #expect(try await both.waitForExit() == 78)
        #expect(both.stderr.contains("ADMIN_TOKEN_FILE") && !both.stderr.contains("env-admin-token"))
    }

    @Test("models validate prints the signature of a good model and names the file and field of a bad one")
    func modelsValidate() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ok = try CortexProcess(arguments: ["models", "validate", "models/lead-scoring"], environment: [:])
        #expect(try await ok.waitForExit() == 0)
        #expect(ok.stdout.contains("input  features FP32 [-1, 10]"))
        #expect(ok.stdout.contains("objective: binary:logistic"))

        let broken = try directory.write("broken.json", #"{"learner":{"objective":{"name":"binary:logistic"}}}"#)
        let failed = try CortexProcess(arguments: ["models", "validate", broken], environment: [:])
        #expect(try await failed.waitForExit() == 1)
        #expect(failed.stdout.contains(broken))
        #expect(failed.stdout.contains("learner."))
    }

    @Test("serve --model serves one model without a config file")
    func serveOneModel() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let model = try String(contentsOfFile: Repository.path("models/lead-scoring/model.json"), encoding: .utf8)
        let path = try directory.write("churn.json", model)
        var env = ["HOST": "127.0.0.1", "PORT": "0", "DATABASE_URL": "sqlite:" + directory.file("x.db"), "MIN_FREE_DISK_MB": "1"]
        env["LOG_LEVEL"] = "info"
        let cortex = try CortexProcess(arguments: ["serve", "--model", path], environment: env)
        defer { cortex.terminate() }
        var port: Int?
        for _ in 0..<600 where port == nil {
            port = cortex.listeningPort
            try await Task.sleep(for: .milliseconds(50))
        }
        let listening = try #require(port)
        #expect(try RawHTTPConnection.request(port: listening, path: "/v2/models/churn")?.status == 200)
        #expect(try RawHTTPConnection.request(port: listening, path: "/v2/models/lead-scoring")?.status == 404)
        cortex.signal(SIGTERM)
        #expect(try await cortex.waitForExit() == 0)
    }
}
