import CortexServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// One bad request and what Cortex must answer.
struct BadRequest: Sendable, CustomTestStringConvertible {
    var label: String
    var method: HTTPRequest.Method = .post
    var path: String = "/v2/models/lead-scoring/infer"
    var body: String
    var status: Int
    var code: String
    /// Words the error message must contain, so the client learns what was expected.
    var mentions: [String] = []

    var testDescription: String { label }
}

private let row = "[1,2,3,4,5,6,7,8,9,0]"

let badRequests: [BadRequest] = [
    BadRequest(label: "malformed JSON", body: "{not json", status: 400, code: "invalid_json"),
    BadRequest(label: "empty body", body: "", status: 400, code: "invalid_json"),
    BadRequest(label: "JSON array instead of object", body: "[1,2]", status: 400, code: "invalid_json"),
    BadRequest(
        label: "NaN literal", body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[NaN,2,3,4,5,6,7,8,9,0]}]}"#,
        status: 400, code: "invalid_json"),
    BadRequest(
        label: "number too large for JSON",
        body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[1e999,2,3,4,5,6,7,8,9,0]}]}"#, status: 400,
        code: "invalid_json"),
    BadRequest(label: "missing inputs", body: #"{"id":"x"}"#, status: 400, code: "invalid_json", mentions: ["inputs"]),
    BadRequest(
        label: "inputs not an array", body: #"{"inputs":{"name":"features"}}"#, status: 400, code: "invalid_json", mentions: ["inputs"]),
    BadRequest(
        label: "shape of strings", body: #"{"inputs":[{"name":"features","shape":["1"],"datatype":"FP32","data":[1]}]}"#, status: 400,
        code: "invalid_json", mentions: ["shape"]),
    BadRequest(label: "no inputs at all", body: #"{"inputs":[]}"#, status: 400, code: "invalid_tensor", mentions: ["features"]),
    BadRequest(
        label: "unknown input name", body: #"{"inputs":[{"name":"x","shape":[1,10],"datatype":"FP32","data":\#(row)}]}"#, status: 400,
        code: "invalid_tensor", mentions: ["'x'", "features"]),
    BadRequest(
        label: "input given twice",
        body:
            #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":\#(row)},{"name":"features","shape":[1,10],"datatype":"FP32","data":\#(row)}]}"#,
        status: 400, code: "invalid_tensor"),
    BadRequest(
        label: "wrong datatype", body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"INT64","data":\#(row)}]}"#, status: 400,
        code: "invalid_tensor", mentions: ["INT64", "FP32"]),
    BadRequest(
        label: "unknown datatype", body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FLOAT","data":\#(row)}]}"#, status: 400,
        code: "invalid_tensor", mentions: ["FLOAT"]),
    BadRequest(
        label: "wrong feature count", body: #"{"inputs":[{"name":"features","shape":[1,9],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9]}]}"#,
        status: 400, code: "invalid_tensor", mentions: ["[1, 9]", "[-1, 10]"]),
    BadRequest(
        label: "rank 1 shape", body: #"{"inputs":[{"name":"features","shape":[10],"datatype":"FP32","data":\#(row)}]}"#, status: 400,
        code: "invalid_tensor"),
    BadRequest(
        label: "shape and data disagree", body: #"{"inputs":[{"name":"features","shape":[2,10],"datatype":"FP32","data":\#(row)}]}"#,
        status: 400, code: "invalid_tensor", mentions: ["10 elements"]),
    BadRequest(
        label: "negative dimension", body: #"{"inputs":[{"name":"features","shape":[-1,10],"datatype":"FP32","data":\#(row)}]}"#,
        status: 400, code: "invalid_tensor"),
    BadRequest(
        label: "overflowing shape",
        body: #"{"inputs":[{"name":"features","shape":[4611686018427387904,10],"datatype":"FP32","data":\#(row)}]}"#, status: 400,
        code: "invalid_tensor"),
    BadRequest(
        label: "string in FP32 data",
        body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":["1",2,3,4,5,6,7,8,9,0]}]}"#, status: 400,
        code: "invalid_tensor", mentions: ["string"]),
    BadRequest(
        label: "boolean in FP32 data",
        body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[true,2,3,4,5,6,7,8,9,0]}]}"#, status: 400,
        code: "invalid_tensor", mentions: ["boolean"]),
    BadRequest(
        label: "object in data",
        body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[{"a":1},2,3,4,5,6,7,8,9,0]}]}"#, status: 400,
        code: "invalid_tensor", mentions: ["object"]),
    BadRequest(
        label: "value outside FP32",
        body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[1e300,2,3,4,5,6,7,8,9,0]}]}"#, status: 400,
        code: "invalid_tensor", mentions: ["FP32"]),
    BadRequest(
        label: "data nested deeper than the shape",
        body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":"# + String(repeating: "[", count: 40) + "1"
            + String(repeating: "]", count: 40) + "}]}", status: 400, code: "invalid_tensor", mentions: ["nests"]),
    BadRequest(
        label: "JSON nested past the parser's limit",
        body: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":"# + String(repeating: "[", count: 70) + "1"
            + String(repeating: "]", count: 70) + "}]}", status: 400, code: "invalid_json", mentions: ["nesting"]),
    BadRequest(
        label: "trailing garbage", body: #"{"inputs":[]} x"#, status: 400, code: "invalid_json"),
    BadRequest(
        label: "invalid UTF-8", body: "{\"inputs\":[{\"name\":\"\u{FFFD}\"}]}".replacingOccurrences(of: "\u{FFFD}", with: "\\ud800"),
        status: 400, code: "invalid_json", mentions: ["surrogate"]),
    BadRequest(
        label: "unknown model", path: "/v2/models/nope/infer", body: #"{"inputs":[]}"#, status: 404, code: "model_not_found",
        mentions: ["nope"]),
    BadRequest(
        label: "unknown version", path: "/v2/models/lead-scoring/versions/7/infer", body: #"{"inputs":[]}"#, status: 404,
        code: "model_not_found"),
    BadRequest(label: "unknown route", path: "/v3/whatever", body: "{}", status: 404, code: "not_found"),
    BadRequest(
        label: "wrong method", method: .get, path: "/v2/models/lead-scoring/infer", body: "", status: 404, code: "not_found",
        mentions: ["GET /v2/models/lead-scoring/infer"]),
    BadRequest(
        label: "score: neither features nor leads", path: "/api/v1/score", body: #"{"lead_id":"a"}"#, status: 422, code: "invalid_input"),
    BadRequest(
        label: "score: unknown feature", path: "/api/v1/score", body: #"{"features":{"shoe_size":42}}"#, status: 422, code: "invalid_input",
        mentions: ["shoe_size"]),
    BadRequest(
        label: "score: text feature", path: "/api/v1/score", body: #"{"features":{"pages_viewed":"many"}}"#, status: 422,
        code: "invalid_input", mentions: ["pages_viewed"]),
    BadRequest(
        label: "score: features not an object", path: "/api/v1/score", body: #"{"features":[1,2]}"#, status: 400, code: "invalid_json"),
    BadRequest(label: "score: empty batch", path: "/api/v1/score", body: #"{"leads":[]}"#, status: 422, code: "invalid_input"),
    BadRequest(
        label: "score: batch too large", path: "/api/v1/score",
        body: #"{"leads":["# + Array(repeating: #"{"features":{}}"#, count: 1001).joined(separator: ",") + "]}", status: 422,
        code: "invalid_input", mentions: ["1000"]),
    BadRequest(
        label: "score: both forms", path: "/api/v1/score", body: #"{"features":{},"leads":[{"features":{}}]}"#, status: 422,
        code: "invalid_input"),
    BadRequest(
        label: "score: value beyond FP32", path: "/api/v1/score", body: #"{"features":{"pages_viewed":1e300}}"#, status: 400,
        code: "invalid_tensor"),
]

@Suite("Bad input gets a clear 4xx, never a 5xx, and never reaches the model")
struct BadInputTests {
    @Test(arguments: badRequests)
    func rejected(_ bad: BadRequest) async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let response = try await client.execute(
                uri: bad.path,
                method: bad.method,
                headers: [.contentType: "application/json"],
                body: ByteBuffer(string: bad.body)
            ) { $0 }
            #expect(response.status.code == bad.status, "\(response.body.text)")
            let body = response.body.jsonObject
            #expect(body["code"] as? String == bad.code, "\(response.body.text)")
            let message = body["error"] as? String ?? ""
            #expect(!message.isEmpty)
            for word in bad.mentions {
                #expect(message.contains(word), "'\(message)' should mention \(word)")
            }
            #expect(body["request_id"] as? String == response.headers[.xRequestID])
            // Nothing was inferred: no success recorded, no prediction timed.
            let metrics = try await client.get("/metrics").body.text
            #expect(!metrics.contains(#"inference_outcome_total{model="lead-scoring",outcome="success"} 1"#))
            #expect(!metrics.contains(#"model_prediction_latency_count{model="lead-scoring"} 1"#))
        }
        #expect(server.logs.events(named: "INFERENCE_SUCCESS").isEmpty)
    }

    @Test("a body over MAX_BODY_BYTES is a 413, by Content-Length or by bytes counted")
    func tooLarge() async throws {
        let server = try await TestServer.make { $0.server.maxBodyBytes = 512 }
        try await server.test { client in
            let big =
                #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}],"pad":""#
                + String(repeating: "x", count: 1024) + #""}"#
            let response = try await client.post("/v2/models/lead-scoring/infer", json: big)
            #expect(response.status == .contentTooLarge)
            #expect(response.body.jsonObject["code"] as? String == "payload_too_large")
            #expect(response.body.jsonObject["max_body_bytes"] as? Int == 512)
            let scored = try await client.post("/api/v1/score", json: big)
            #expect(scored.status == .contentTooLarge)
        }
    }

    @Test("request bodies never appear in the logs")
    func bodiesNotLogged() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            _ = try await client.post("/api/v1/score", json: #"{"lead_id":"SECRET-LEAD-7731","features":{"pages_viewed":3}}"#)
            _ = try await client.post("/api/v1/score", json: #"{"lead_id":"x","features":{"SECRET-FEATURE-99":3}}"#)
        }
        #expect(!server.logs.events(named: "REQ_END").isEmpty)
        #expect(!server.logs.allText.contains("SECRET-LEAD-7731"))
        #expect(!server.logs.allText.contains("SECRET-FEATURE-99"))
    }
}
