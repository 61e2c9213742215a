import CortexServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Request ids")
struct RequestIDTests {
    @Test("a sane X-Request-ID is returned as Trace-Id and X-Request-ID and carried by every log line")
    func echoed() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let response = try await client.post(
                "/v2/models/lead-scoring/infer",
                json: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#,
                headers: [.xRequestID: "client-42.abc"]
            )
            #expect(response.status == .ok)
            #expect(response.headers[.traceID] == "client-42.abc")
            #expect(response.headers[.xRequestID] == "client-42.abc")
        }
        for name in ["REQ_START", "INFERENCE_SUCCESS", "REQ_END"] {
            let event = server.logs.events(named: name).first
            #expect(event?.metadata["request_id"] == "client-42.abc", "\(name)")
        }
        let end = server.logs.events(named: "REQ_END").first
        #expect(end?.metadata["status"] == "200")
        #expect(end?.metadata["route"] == "/v2/models/{model}/infer")
        #expect(end?.metadata["duration_ms"] != nil)
        #expect(server.logs.events(named: "INFERENCE_SUCCESS").first?.metadata["version"] == "1.0.0")
    }

    @Test(
        "an insane X-Request-ID is replaced by a generated one",
        arguments: ["has space", String(repeating: "a", count: 129), "quote\"inject", "semi;colon", ""]
    )
    func replaced(candidate: String) async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let response = try await client.get("/health", headers: [.xRequestID: candidate])
            let id = response.headers[.traceID] ?? ""
            #expect(id != candidate)
            #expect(id.count == 32)
            #expect(id.allSatisfy { $0.isHexDigit })
            #expect(response.headers[.xRequestID] == id)
        }
    }

    @Test("without X-Request-ID every response still gets a distinct id, errors included")
    func generated() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let first = try await client.get("/health")
            let second = try await client.get("/no-such-route")
            let a = first.headers[.traceID]
            let b = second.headers[.traceID]
            #expect(a != nil && b != nil && a != b)
            #expect(second.status == .notFound)
            #expect(second.body.jsonObject["request_id"] as? String == b)
        }
    }

    @Test("at info level probes log nothing, still return ids, and inference lines still carry the id")
    func quietProbes() async throws {
        let server = try await TestServer.make(logLevel: .info)
        try await server.test { client in
            let probe = try await client.get("/health", headers: [.xRequestID: "probe-1"])
            #expect(probe.headers[.traceID] == "probe-1")
            let inferred = try await client.post(
                "/v2/models/lead-scoring/infer",
                json: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#,
                headers: [.xRequestID: "infer-1"]
            )
            #expect(inferred.status == .ok)
        }
        #expect(!server.logs.allText.contains("probe-1"))
        #expect(server.logs.events(named: "INFERENCE_SUCCESS").first?.metadata["request_id"] == "infer-1")
        #expect(server.logs.events(named: "REQ_END").allSatisfy { $0.metadata["request_id"] == "infer-1" })
    }
}
