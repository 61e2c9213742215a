import CortexTestSupport
import Foundation
import Testing

/// Requests that once crashed the server or were answered wrongly, sent to a real `cortex`
/// process over raw sockets: each must get its 4xx, and the server must keep serving.
@Suite("Hardening: regressions through the real binary", .serialized)
struct HardeningTests {
    static let adminToken = "hardening-admin-token-0123456789"

    /// A V2 request with the binary data extension: the JSON header, then `binary`.
    static func binaryRequest(shape: [Int], datatype: String, binary: [UInt8]) -> (body: [UInt8], headerLength: Int) {
        let header =
            #"{"inputs":[{"name":"image","shape":\#(shape),"datatype":"\#(datatype)","parameters":{"binary_data_size":\#(binary.count)}}]}"#
        return (Array(header.utf8) + binary, header.utf8.count)
    }

    @Test("tensor sizes that overflow 64 bits, and empty dimensions, are 400s; the server keeps serving")
    func tensorSizes() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: [:], directory: directory)
        defer { cortex.terminate() }
        try await ONNXServingTests.waitUntilReady(["vA"], port: port)
        let cases: [(shape: [Int], datatype: String, bytes: Int, reason: String)] = [
            // 2^61 FP32 elements need 2^63 bytes: the product used to trap before any check.
            ([2_305_843_009_213_693_952], "FP32", 4, "bytes of binary data"),
            ([1_152_921_504_606_846_976], "FP64", 8, "bytes of binary data"),
            ([288_230_376_151_711_744, 1, 2, 4], "FP32", 4, "bytes of binary data"),
            ([2_305_843_009_213_693_952], "BYTES", 4, "BYTES elements"),
            // The element count itself overflows.
            ([4_611_686_018_427_387_904, 4], "FP32", 4, "invalid shape"),
            // A dimension of 0 used to reach ONNX Runtime and answer 500.
            ([1, 1, 8, 0], "FP32", 0, "every dimension must be at least 1"),
            ([0, 1, 8, 8], "FP32", 0, "every dimension must be at least 1"),
        ]
        for (shape, datatype, bytes, reason) in cases {
            let (body, headerLength) = Self.binaryRequest(shape: shape, datatype: datatype, binary: Array(repeating: 0, count: bytes))
            let response = try #require(
                try RawHTTPConnection.request(
                    port: port, method: "POST", path: "/v2/models/vA/infer", body: body,
                    headers: [("Inference-Header-Content-Length", "\(headerLength)")]))
            #expect(response.status == 400, "\(shape) \(datatype): \(response.body)")
            #expect(response.body.contains(reason), "\(shape) \(datatype): \(response.body)")
            #expect(response.body.contains("request_id"), "\(response.body)")
        }
        // The same empty dimension as JSON data.
        let json = try #require(
            try RawHTTPConnection.request(
                port: port, method: "POST", path: "/v2/models/vA/infer",
                body: #"{"inputs":[{"name":"image","shape":[1,1,8,0],"datatype":"FP32","data":[]}]}"#))
        #expect(json.status == 400, "\(json.body)")
        #expect(json.body.contains("every dimension must be at least 1"))
        #expect(cortex.process.isRunning)
        #expect(try RawHTTPConnection.request(port: port, path: "/health")?.status == 200)
        let metrics = try #require(try RawHTTPConnection.request(port: port, path: "/metrics")).body
        #expect(
            metrics.contains(#"inference_outcome_total{model="vA",outcome="invalid_input"} 3"#), "the three that parse reach validation")
        let errors = metrics.split(separator: "\n").first { $0.hasPrefix(#"inference_outcome_total{model="vA",outcome="error"}"#) }
        #expect(errors == nil || errors?.hasSuffix(" 0") == true, "no inference failed: \(errors ?? "")")
    }

    @Test("a grant past the most a balance holds is a 422 naming the limit; the balance stays readable and the ledger verifies")
    func balanceLimit() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = "sqlite:" + directory.file("cortex.db")
        let (cortex, port) = try await CortexProcess.serve(
            environment: ["ADMIN_TOKEN": Self.adminToken, "DATABASE_URL": database, "DEMO_CREDITS": "100"], directory: directory)
        defer { cortex.terminate() }
        let admin = [("Authorization", "Bearer \(Self.adminToken)")]
        func grant(_ amount: String) throws -> (status: Int, body: String) {
            try #require(
                try RawHTTPConnection.request(
                    port: port, method: "POST", path: "/admin/tenants/demo/credits", body: #"{"amount":"\#(amount)"}"#, demoKey: "",
                    headers: admin))
        }
        // The whole 64-bit range on top of 100 credits: refused, nothing changes.
        let over = try grant("9223372036854.775807")
        #expect(over.status == 422, "\(over.body)")
        #expect(over.body.contains(#""code":"balance_limit""#), "\(over.body)")
        #expect(over.body.contains("9223372036854.775807"), "the limit is named: \(over.body)")
        // Up to the limit exactly, then one micro-credit more.
        #expect(try grant("9223372036754.775807").status == 200)
        let more = try grant("0.000001")
        #expect(more.status == 422, "\(more.body)")
        // Reads that used to crash the process once the balance had become a float.
        let me = try #require(try RawHTTPConnection.request(port: port, path: "/me"))
        #expect(me.status == 200, "\(me.body)")
        #expect(me.body.contains("9223372036854.775807"), "\(me.body)")
        let credits = try #require(
            try RawHTTPConnection.request(port: port, path: "/admin/tenants/demo/credits", demoKey: "", headers: admin))
        #expect(credits.status == 200, "\(credits.body)")
        #expect(cortex.process.isRunning)
        let verify = try await CortexProcess.run(["db", "verify"], environment: ["DATABASE_URL": database])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        let balance = try await CortexProcess.run(["credits", "balance", "demo"], environment: ["DATABASE_URL": database])
        #expect(balance.status == 0, "\(balance.stdout) \(balance.stderr)")
        #expect(balance.stdout.contains("9223372036854.775807"), "\(balance.stdout)")
    }
}
