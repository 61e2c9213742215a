import CortexCore
import CortexRuntime
import Foundation
import NIOCore
import Testing

@testable import CortexServer

/// The Open Inference Protocol's body read and written without HTTP.
@Suite("Open Inference Protocol codec")
struct InferenceProtocolCodecTests {
    static let model = ModelMetadata(
        name: "m", version: "3", platform: "test",
        inputs: [TensorSpec(name: "x", datatype: .fp32, shape: TensorShape([-1, 2]))],
        outputs: [
            TensorSpec(name: "y", datatype: .fp32, shape: TensorShape([-1, 2])),
            TensorSpec(name: "label", datatype: .int64, shape: TensorShape([-1])),
        ])

    static func decode(_ json: String, binary: [UInt8] = [], headerLength: String? = nil) throws(APIError) -> InferenceProtocolCodec.Decoded
    {
        var buffer = ByteBuffer(string: json)
        buffer.writeBytes(binary)
        return try InferenceProtocolCodec.decode(
            buffer, headerLength: headerLength ?? (binary.isEmpty ? nil : String(json.utf8.count)), for: model)
    }

    static func fp32Bytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
    }

    @Test("JSON data, flat or nested to the shape's depth, becomes the same typed tensor; the id and every output are kept")
    func json() throws {
        let flat = try Self.decode(#"{"id":"r1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}"#)
        let nested = try Self.decode(#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}"#)
        #expect(flat.id == "r1" && nested.id == nil)
        #expect(flat.tensors == nested.tensors)
        #expect(flat.tensors == [Tensor(name: "x", datatype: .fp32, shape: TensorShape([2, 2]), data: .float([1, 2, 3, 4]))])
        #expect(flat.requested.map(\.index) == [0, 1] && flat.requested.allSatisfy { !$0.binary })
    }

    @Test("the binary data extension: the bytes after the JSON are the tensor, little-endian, as many as it claims")
    func binary() throws {
        let json =
            #"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}],"outputs":[{"name":"label","parameters":{"binary_data":true}}]}"#
        let decoded = try Self.decode(json, binary: Self.fp32Bytes([1.5, -2]))
        #expect(decoded.tensors == [Tensor(name: "x", datatype: .fp32, shape: TensorShape([1, 2]), data: .float([1.5, -2]))])
        #expect(decoded.requested.count == 1 && decoded.requested[0].index == 1 && decoded.requested[0].binary)
    }

    @Test(
        "bad bodies are 400s that name the problem",
        arguments: [
            (#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32"}]}"#, "either 'data' or"),
            (#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP99","data":[1,2]}]}"#, "unknown datatype 'FP99'"),
            (#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"INT64","data":[1,2.5]}]}"#, "not an integer"),
            (#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,"a"]}]}"#, "its data holds"),
            (#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}],"outputs":[{"name":"z"}]}"#, "unknown output 'z'"),
            (#"{"inputs":[{"name":"x","shape":[1,2,1],"datatype":"FP32","data":[[1,2]]}]}"#, "nests its data 2 deep"),
        ]
    )
    func badJSON(json: String, message: String) {
        #expect {
            try Self.decode(json)
        } throws: { error in
            guard let error = error as? APIError else { return false }
            return error.status == 400 && error.message.contains(message)
        }
    }

    @Test("binary byte counts that do not add up are 400s: too few bytes, bytes left over, a header length past the body")
    func badBinary() {
        let json = #"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#
        for (bytes, headerLength, message) in [
            (Self.fp32Bytes([1]), nil as String?, "claims 8 bytes"),
            (Self.fp32Bytes([1, 2, 3]), nil, "bytes of binary data follow"),
            (Self.fp32Bytes([1, 2]), "100000", "Inference-Header-Content-Length"),
        ] {
            #expect {
                try Self.decode(json, binary: bytes, headerLength: headerLength)
            } throws: { error in
                (error as? APIError)?.message.contains(message) == true
            }
        }
    }

    @Test("outputs are written as JSON data, or as raw bytes after the JSON with their size, as asked")
    func encode() throws {
        let outputs = [
            Tensor(name: "y", datatype: .fp32, shape: TensorShape([1, 2]), data: .float([0.25, 0.75])),
            Tensor(name: "label", datatype: .int64, shape: TensorShape([1]), data: .int([7])),
        ]
        let asJSON = InferenceProtocolCodec.encode(
            outputs, of: Self.model, answering: .init(id: "r9", tensors: [], requested: [(0, false), (1, false)]))
        #expect(asJSON.binary == nil)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(asJSON.json.utf8)) as? [String: Any])
        #expect(object["model_name"] as? String == "m" && object["model_version"] as? String == "3" && object["id"] as? String == "r9")
        let written = try #require(object["outputs"] as? [[String: Any]])
        #expect(written.map { $0["name"] as? String } == ["y", "label"])
        #expect(written[0]["data"] as? [Double] == [0.25, 0.75] && written[1]["data"] as? [Int] == [7])

        let asBinary = InferenceProtocolCodec.encode(
            outputs, of: Self.model, answering: .init(id: nil, tensors: [], requested: [(1, true)]))
        #expect(asBinary.binary == withUnsafeBytes(of: Int64(7).littleEndian, Array.init))
        let head = try #require(try JSONSerialization.jsonObject(with: Data(asBinary.json.utf8)) as? [String: Any])
        let only = try #require((head["outputs"] as? [[String: Any]])?.first)
        #expect(only["name"] as? String == "label" && only["data"] == nil)
        #expect((only["parameters"] as? [String: Any])?["binary_data_size"] as? Int == 8)
    }
}
