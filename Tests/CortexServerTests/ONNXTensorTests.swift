import CortexRuntime
import CortexServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The Open Inference Protocol on an ONNX model, in process: binary round trips, and a table of
/// bad tensors that must each get a 400 saying what was expected, with nothing run.
@Suite("ONNX tensors over the Open Inference Protocol")
struct ONNXTensorTests {
    static let header = #"{"inputs":[{"name":"image","shape":[1,1,8,8],"datatype":"FP32","parameters":{"binary_data_size":256}}]}"#

    /// A binary request: the JSON header, then `bytes`.
    static func binary(_ json: String, _ bytes: [UInt8], headerLength: String? = nil) -> (HTTPFields, ByteBuffer) {
        var buffer = ByteBuffer(string: json)
        buffer.writeBytes(bytes)
        var headers: HTTPFields = [.contentType: "application/octet-stream"]
        headers[.inferenceHeaderContentLength] = headerLength ?? String(json.utf8.count)
        return (headers, buffer)
    }

    static func floats(_ values: [Float]) -> [UInt8] {
        values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
    }

    @Test("binary in and binary out carry the same numbers as JSON")
    func binaryRoundTrip() async throws {
        let server = try await TestServer.make(models: Repository.imageModels)
        try await server.test { client in
            let pixels = (0..<64).map { Float($0 % 17) / 16 }
            let json = try await client.post(
                "/v2/models/vA/infer",
                json:
                    #"{"inputs":[{"name":"image","shape":[1,1,8,8],"datatype":"FP32","data":[\#(pixels.map { "\($0)" }.joined(separator: ","))]}]}"#
            )
            #expect(json.status == .ok)
            let jsonValues = ((json.body.jsonObject["outputs"] as? [[String: Any]])?.first?["data"] as? [Double])?.map(Float.init) ?? []
            let request =
                #"{"inputs":[{"name":"image","shape":[1,1,8,8],"datatype":"FP32","parameters":{"binary_data_size":256}}],"#
                + #""parameters":{"binary_data_output":true}}"#
            let (headers, body) = Self.binary(request, Self.floats(pixels))
            let response = try await client.execute(uri: "/v2/models/vA/infer", method: .post, headers: headers, body: body) { $0 }
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/octet-stream")
            let headerLength = try #require(response.headers[.inferenceHeaderContentLength].flatMap { Int($0) })
            let bytes = Array(response.body.readableBytesView)
            let outputHeader = try #require(
                try JSONSerialization.jsonObject(with: Data(bytes[..<headerLength])) as? [String: Any])
            let output = try #require((outputHeader["outputs"] as? [[String: Any]])?.first)
            #expect((output["parameters"] as? [String: Any])?["binary_data_size"] as? Int == 40)
            #expect(output["data"] == nil)
            let binaryValues = stride(from: headerLength, to: bytes.count, by: 4).map { offset in
                Float(
                    bitPattern: UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(
                        bytes[offset + 3]) << 24)
            }
            #expect(binaryValues.count == 10)
            #expect(binaryValues == jsonValues)
        }
    }

    @Test("bad tensors get a 400 naming what was expected; nothing runs")
    func badTensors() async throws {
        let server = try await TestServer.make(models: Repository.imageModels)
        let zeros = Self.floats(Array(repeating: 0, count: 64))
        let json: [(String, String, String)] = [
            (
                "wrong datatype",
                #"{"inputs":[{"name":"image","shape":[1,1,8,8],"datatype":"FP64","data":[\#(Array(repeating: "0", count: 64).joined(separator: ","))]}]}"#,
                "expected FP32"
            ),
            (
                "wrong rank",
                #"{"inputs":[{"name":"image","shape":[1,64],"datatype":"FP32","data":[\#(Array(repeating: "0", count: 64).joined(separator: ","))]}]}"#,
                "expected [-1, 1, -1, -1]"
            ),
            (
                "three channels", #"{"inputs":[{"name":"image","shape":[1,3,1,1],"datatype":"FP32","data":[0,0,0]}]}"#,
                "expected [-1, 1, -1, -1]"
            ),
            ("too few elements", #"{"inputs":[{"name":"image","shape":[1,1,8,8],"datatype":"FP32","data":[0,0,0]}]}"#, "needs 64"),
            ("text in FP32", #"{"inputs":[{"name":"image","shape":[1,1,1,1],"datatype":"FP32","data":["a"]}]}"#, "FP32"),
            ("unknown input", #"{"inputs":[{"name":"pixels","shape":[1,1,1,1],"datatype":"FP32","data":[0]}]}"#, "unknown input 'pixels'"),
            ("missing input", #"{"inputs":[]}"#, "missing input 'image'"),
            ("unknown datatype", #"{"inputs":[{"name":"image","shape":[1,1,1,1],"datatype":"FP8","data":[0]}]}"#, "unknown datatype"),
            (
                "unknown output",
                #"{"inputs":[{"name":"image","shape":[1,1,1,1],"datatype":"FP32","data":[0]}],"outputs":[{"name":"logits"}]}"#,
                "unknown output 'logits'"
            ),
            (
                "FP32 overflow", #"{"inputs":[{"name":"image","shape":[1,1,1,1],"datatype":"FP32","data":[1e300]}]}"#,
                "outside the range of FP32"
            ),
            (
                "data and binary size",
                #"{"inputs":[{"name":"image","shape":[1,1,1,1],"datatype":"FP32","data":[0],"parameters":{"binary_data_size":4}}]}"#,
                "not both"
            ),
            ("neither data nor binary size", #"{"inputs":[{"name":"image","shape":[1,1,1,1],"datatype":"FP32"}]}"#, "not neither"),
            (
                "binary_data_output not a flag",
                #"{"inputs":[{"name":"image","shape":[1,1,1,1],"datatype":"FP32","data":[0]}],"parameters":{"binary_data_output":"yes"}}"#,
                "true or false"
            ),
        ]
        let binary: [(String, String, [UInt8], String?, String)] = [
            ("fewer bytes than claimed", Self.header, Array(zeros.prefix(100)), nil, "only 100 follow"),
            ("more bytes than claimed", Self.header, zeros + [0, 0, 0, 0], nil, "4 bytes of binary data follow"),
            (
                "size not matching the shape", Self.header.replacingOccurrences(of: "256", with: "252"), Array(zeros.prefix(252)), nil,
                "need 256"
            ),
            ("header length beyond the body", Self.header, zeros, "99999", "Inference-Header-Content-Length"),
            ("header length not a number", Self.header, zeros, "abc", "Inference-Header-Content-Length"),
            ("header length cutting the JSON", Self.header, zeros, "20", "malformed JSON"),
        ]
        try await server.test { client in
            for (name, body, message) in json {
                let response = try await client.post("/v2/models/vA/infer", json: body)
                #expect(response.status == .badRequest, "\(name): \(response.body.text)")
                #expect(response.body.text.contains(message), "\(name): \(response.body.text)")
            }
            for (name, header, bytes, length, message) in binary {
                let (headers, body) = Self.binary(header, bytes, headerLength: length)
                let response = try await client.execute(uri: "/v2/models/vA/infer", method: .post, headers: headers, body: body) { $0 }
                #expect(response.status == .badRequest, "\(name): \(response.body.text)")
                #expect(response.body.text.contains(message), "\(name): \(response.body.text)")
            }
            let stats = try await client.get("/v2/models/vA/stats")
            #expect((stats.body.jsonObject["model_stats"] as? [[String: Any]])?.first?["inference_count"] as? Int == 0)
        }
    }
}
