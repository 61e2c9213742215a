import CortexRuntime
import CortexServer
import CortexTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The A/B image service's `POST /v1/infer`: real PNG and JPEG test images through libpng, libjpeg-turbo and
/// ONNX Runtime, and a table of bad images and bad requests.
@Suite("Image classification (the A/B image service's /v1/infer)")
struct ImageTests {
    static func expected() throws -> [DigitsFixture.Image] {
        try DigitsFixture.load(root: Repository.root).images
    }

    static func base64(_ file: String) throws -> String {
        try Data(contentsOf: URL(fileURLWithPath: Repository.path("models/digits/\(file)"))).base64EncodedString()
    }

    static func request(_ base64: String, size: Int? = nil, extra: String = "") -> String {
        #"{"image_b64":"\#(base64)""# + (size.map { #","img_size":\#($0)"# } ?? "") + extra + "}"
    }

    @Test("every test image is classified right by both models; 8x8 PNGs give ONNX Runtime's own probabilities")
    func classify() async throws {
        let server = try await TestServer.make(models: Repository.imageModels)
        let images = try Self.expected()
        // ONNX Runtime's own probabilities on this machine for the 8x8 images, by file name.
        let exact = try DigitsFixture.load(root: Repository.root).exact.map(\.file)
        let reference = try ["vA", "vB"].reduce(into: [String: [String: [Float]]]()) { byModel, model in
            byModel[model] = Dictionary(uniqueKeysWithValues: zip(exact, try ONNXReference.live().outputs(model).single))
        }
        try await server.test { client in
            var correct = 0
            for image in images {
                for model in ["vA", "vB"] {
                    let response = try await client.post(
                        "/v1/infer",
                        json: Self.request(try Self.base64(image.file), size: image.size, extra: #","model":"\#(model)","top_k":10"#))
                    #expect(response.status == .ok, "\(image.file): \(String(buffer: response.body))")
                    let body = response.body.jsonObject
                    #expect(body["model"] as? String == model)
                    if body["label"] as? String == String(image.label) { correct += 1 }
                    let predictions = body["predictions"] as? [[String: Any]] ?? []
                    #expect(predictions.count == 10)
                    if let expected = reference[model]?[image.file] {
                        let best = expected.indices.max { expected[$0] < expected[$1] } ?? -1
                        #expect(body["label"] as? String == String(best), "\(model) on \(image.file): ONNX Runtime's verdict")
                        // Decoding and normalising in Cortex give the tensor Python gave ONNX Runtime.
                        for prediction in predictions {
                            let label = Int(prediction["label"] as? String ?? "") ?? -1
                            let probability = Float(prediction["probability"] as? Double ?? -1)
                            #expect(abs(probability - expected[label]) <= 1e-6, "\(model) \(image.file) class \(label)")
                        }
                    }
                }
            }
            #expect(correct >= images.count * 2 * 9 / 10, "real classifiers: \(correct) of \(images.count * 2) right")
            // The A/B image service's documented request: any img_size; the default model is vA.
            let seed = try await client.post("/v1/infer", json: Self.request(try Self.base64("digit7_0.png"), size: 224))
            #expect(seed.status == .ok)
            #expect(seed.body.jsonObject["img_size"] as? Int == 224)
            #expect(seed.body.jsonObject["model"] as? String == "vA")
            #expect((seed.body.jsonObject["predictions"] as? [Any])?.count == 5)
            let stats = try await client.get("/v2/models/vA/stats")
            let count = ((stats.body.jsonObject["model_stats"] as? [[String: Any]])?.first?["inference_count"] as? Int) ?? 0
            #expect(count == images.count + 1)
        }
    }

    /// A PNG whose header claims `width`×`height` grey pixels and whose data is a few bytes.
    static func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
        }
        let header = bigEndian(width) + bigEndian(height) + [8, 0, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header)
            + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]) + chunk("IEND", [])
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    @Test("bad images get 400 or 413, bad parameters 422, each saying why; nothing runs")
    func badInput() async throws {
        let server = try await TestServer.make(models: Repository.imageModels + [ModelSource(path: Repository.leadScoring)]) {
            $0.server.maxBodyBytes = 64 * 1024
        }
        let png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Repository.path("models/digits/digit3_0.png"))))
        let jpeg = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Repository.path("models/digits/digit0_0.jpg"))))
        var corrupt = png
        for index in 41..<min(corrupt.count - 12, 60) { corrupt[index] ^= 0x5A }
        let b64 = { (bytes: [UInt8]) in Data(bytes).base64EncodedString() }
        let good = b64(png)
        let cases: [(String, String, Int, String, String)] = [
            ("no image", #"{"img_size":8}"#, 400, "invalid_json", "image_b64"),
            ("not base64", Self.request("!!!not*base64!!!", size: 8), 400, "invalid_image", "base64"),
            ("empty image", Self.request("", size: 8), 400, "invalid_image", "empty"),
            ("text, not an image", Self.request(b64(Array("hello, world".utf8)), size: 8), 400, "invalid_image", "neither PNG nor JPEG"),
            (
                "GIF", Self.request(b64(Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0]), size: 8), 400, "invalid_image",
                "neither PNG nor JPEG"
            ),
            ("truncated PNG", Self.request(b64(Array(png.prefix(40))), size: 8), 400, "invalid_image", "PNG"),
            ("corrupt PNG data", Self.request(b64(corrupt), size: 8), 400, "invalid_image", "PNG"),
            // Whole up to its image data: libpng's reader alone would decode it.
            ("PNG cut after its image data", Self.request(b64(Array(png.dropLast(12))), size: 8), 400, "invalid_image", "truncated"),
            ("PNG cut inside IEND", Self.request(b64(Array(png.dropLast(4))), size: 8), 400, "invalid_image", "truncated"),
            ("truncated JPEG", Self.request(b64(Array(jpeg.prefix(jpeg.count / 2))), size: 8), 400, "invalid_image", "JPEG"),
            ("JPEG header only", Self.request(b64([0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), size: 8), 400, "invalid_image", "no pixels"),
            (
                "decompression bomb (100000x100000 header)", Self.request(b64(Self.pngHeader(width: 100_000, height: 100_000)), size: 8),
                413, "image_too_large", "100000x100000"
            ),
            ("zero-size header", Self.request(b64(Self.pngHeader(width: 0, height: 5)), size: 8), 400, "invalid_image", "PNG"),
            ("img_size 0", Self.request(good, size: 0), 422, "invalid_input", "img_size"),
            ("img_size too big", Self.request(good, size: 5000), 422, "invalid_input", "img_size"),
            ("img_size not an integer", Self.request(good, extra: #","img_size":8.5"#), 422, "invalid_input", "img_size"),
            ("img_size as text", Self.request(good, extra: #","img_size":"8""#), 422, "invalid_input", "img_size"),
            ("top_k 0", Self.request(good, size: 8, extra: #","top_k":0"#), 422, "invalid_input", "top_k"),
            ("top_k over the labels", Self.request(good, size: 8, extra: #","top_k":11"#), 422, "invalid_input", "top_k"),
            ("unknown model", Self.request(good, size: 8, extra: #","model":"nope""#), 404, "model_not_found", "nope"),
            (
                "not an image model", Self.request(good, size: 8, extra: #","model":"lead-scoring""#), 422, "invalid_input",
                "does not classify images"
            ),
            ("not JSON", "image_b64=abc", 400, "invalid_json", "malformed JSON"),
            ("JSON array", "[1]", 400, "invalid_json", "object"),
            (
                "over MAX_BODY_BYTES", Self.request(String(repeating: "A", count: 70 * 1024), size: 8), 413, "payload_too_large",
                "exceeds 65536 bytes"
            ),
        ]
        try await server.test { client in
            for (name, body, status, code, message) in cases {
                let response = try await client.post("/v1/infer", json: body)
                let json = response.body.jsonObject
                #expect(Int(response.status.code) == status, "\(name): \(String(buffer: response.body))")
                #expect(json["code"] as? String == code, "\(name)")
                #expect((json["error"] as? String)?.contains(message) == true, "\(name): \(String(buffer: response.body))")
                #expect((json["request_id"] as? String)?.isEmpty == false, "\(name)")
            }
            for model in ["vA", "vB"] {
                let stats = try await client.get("/v2/models/\(model)/stats")
                let figures = (stats.body.jsonObject["model_stats"] as? [[String: Any]])?.first
                #expect(figures?["inference_count"] as? Int == 0, "nothing ran on \(model)")
            }
        }
    }

    @Test("IMAGE_MAX_PIXELS refuses an image larger than allowed with 413, before decoding it")
    func maxPixels() async throws {
        let server = try await TestServer.make(models: Repository.imageModels) { $0.imageMaxPixels = 1000 }
        try await server.test { client in
            let small = try await client.post("/v1/infer", json: Self.request(try Self.base64("digit3_0.png"), size: 8))
            #expect(small.status == .ok)
            let large = try await client.post("/v1/infer", json: Self.request(try Self.base64("digit0_0_64.png"), size: 8))
            #expect(large.status == .contentTooLarge)
            #expect((large.body.jsonObject["error"] as? String)?.contains("64x64") == true)
        }
    }
}
