import CortexTestSupport
import Foundation
import Testing

/// Two real `cortex serve` processes on one PostgreSQL: what one replica changes, decides or
/// promotes, the other applies by itself.
@Suite("Traffic shared by two processes on one PostgreSQL (real processes)", .serialized)
struct ReplicatedTrafficTests {
    /// The admin token (and no API key: a key without the admin scope is refused at admin routes).
    static let admin = [("Authorization", "Bearer \(AdminAPITests.adminToken)")]

    /// `GET /admin/config` of the replica on `port`, parsed.
    static func config(_ port: Int) throws -> [String: Any] {
        let answer = try RawHTTPConnection.request(port: port, path: "/admin/config", demoKey: "", headers: admin)
        return (try? JSONSerialization.jsonObject(with: Data((answer?.body ?? "").utf8)) as? [String: Any]) ?? [:]
    }

    /// Waits (up to a minute: a bound on a hang, not on speed) until `condition` holds.
    static func eventually(_ condition: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// The model that answered a `POST /v1/infer` on `port`.
    static func served(_ port: Int) throws -> String? {
        let answer = try RawHTTPConnection.request(port: port, method: "POST", path: "/v1/infer", body: try TrafficSplitTests.digit())
        guard answer?.status == 200 else { return "status \(answer?.status ?? 0): \(answer?.body ?? "")" }
        let body = try? JSONSerialization.jsonObject(with: Data((answer?.body ?? "").utf8)) as? [String: Any]
        return body?["model"] as? String
    }

    @Test("a weight change, a canary's decisions and a promotion made on one process are applied by the other")
    func twoProcesses() async throws {
        let database = try await PostgresTestServer.createDatabase()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let environment = [
            "DATABASE_URL": database, "ADMIN_TOKEN": AdminAPITests.adminToken,
            "CANARY_STEPS": "50,100", "CANARY_MIN_REQUESTS": "5",
            // Generous: a busy machine's jitter is no breach; this test is about sharing the decision.
            "CANARY_LATENCY_ALLOWANCE_MS": "1000",
        ]
        let (a, portA) = try await CortexProcess.serve(environment: environment, directory: directory)
        defer { a.terminate() }
        let (b, portB) = try await CortexProcess.serve(environment: environment, directory: directory)
        defer { b.terminate() }

        // A weight change on A reaches B.
        let changed = try RawHTTPConnection.request(
            port: portA, method: "POST", path: "/admin/config", body: #"{"ab_weight_a":0,"ab_weight_b":1}"#, demoKey: "",
            headers: Self.admin)
        #expect(changed?.status == 200, "\(changed?.body ?? "")")
        #expect(try await Self.eventually { try Self.config(portB)["version"] as? Int == 1 }, "\((try? Self.config(portB)) ?? [:])")
        #expect(try Self.served(portB) == "vB")

        // A canary turned on at A; B's traffic completes the step and promotes; A follows.
        let canary = try RawHTTPConnection.request(
            port: portA, method: "POST", path: "/admin/config", body: #"{"canary_enabled":true}"#, demoKey: "", headers: Self.admin)
        #expect(canary?.status == 200, "\(canary?.body ?? "")")
        #expect(try await Self.eventually { (try Self.config(portB)["canary"] as? [String: Any])?["enabled"] as? Bool == true })
        #expect(
            try await Self.eventually {
                _ = try Self.served(portB)
                return b.logEvents.contains { $0["event"] as? String == "CANARY_PROMOTED" }
            })
        #expect(
            try await Self.eventually {
                let config = try Self.config(portA)
                return config["canary_enabled"] as? Bool == false && config["ab_weight_b"] as? Double == 1 && config["version"] as? Int == 3
            }, "\((try? Self.config(portA)) ?? [:])")
        #expect(!a.logEvents.contains { ($0["event"] as? String)?.hasPrefix("CANARY_") == true }, "A decided nothing itself")

        // A promotion on A: B loads vB's file as vA too.
        let promoted = try RawHTTPConnection.request(port: portA, method: "POST", path: "/admin/promote", demoKey: "", headers: Self.admin)
        #expect(promoted?.status == 200, "\(promoted?.body ?? "")")
        #expect(try await Self.eventually { b.logEvents.contains { $0["event"] as? String == "MODEL_PROMOTED" } })
        let line = b.logEvents.first { $0["event"] as? String == "MODEL_PROMOTED" }
        #expect((line?["to"] as? String)?.hasSuffix("vB.onnx") == true, "\(line ?? [:])")
        let (servedA, servedB) = (try Self.served(portA), try Self.served(portB))
        #expect(servedA == "vB" && servedB == "vB", "the split (weights 0 and 1) is shared; the model named vB answers")
        a.terminate()
        b.terminate()
        try? await PostgresTestServer.dropDatabase(database)
    }
}
