import CortexStore
import Foundation
public import Hummingbird

/// The body of a billed route's answer: JSON, or (the Open Inference Protocol's binary data
/// extension) JSON followed by raw tensor bytes.
public struct ResponseContent: Sendable {
    /// The JSON text (the whole body, or its first part).
    public var json: String
    /// Raw tensor bytes after the JSON, `nil` for a plain JSON body.
    public var binary: [UInt8]?

    /// A plain JSON body.
    public init(json: String, binary: [UInt8]? = nil) {
        self.json = json
        self.binary = binary
    }

    /// The response: `application/json`, or `application/octet-stream` with
    /// `Inference-Header-Content-Length` when binary data follows.
    func response(status: HTTPResponse.Status = .ok) -> Response {
        guard let binary else {
            return Response(
                status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: json)))
        }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(json.utf8.count + binary.count)
        let headerLength = buffer.writeString(json)
        buffer.writeBytes(binary)
        return Response(
            status: status,
            headers: [.contentType: "application/octet-stream", .inferenceHeaderContentLength: String(headerLength)],
            body: ResponseBody(byteBuffer: buffer)
        )
    }

    /// How the body is kept for an `Idempotency-Key` replay: the JSON as is (it starts with `{`),
    /// or `b64:<JSON length>:<base64 of JSON and bytes>` when binary data follows.
    var stored: String {
        guard let binary else { return json }
        let bytes = Array(json.utf8) + binary
        return "b64:\(json.utf8.count):" + Data(bytes).base64EncodedString()
    }

    /// Reads a body kept by ``stored``.
    init(stored: String) {
        let parts = stored.split(separator: ":", maxSplits: 2)
        guard stored.hasPrefix("b64:"), parts.count == 3, let length = Int(parts[1]), let data = Data(base64Encoded: String(parts[2])),
            length <= data.count
        else {
            self.init(json: stored)
            return
        }
        let bytes = [UInt8](data)
        self.init(json: String(decoding: bytes[..<length], as: UTF8.self), binary: Array(bytes[length...]))
    }
}

extension Billing.Charged {
    /// The HTTP answer: the content with `X-Credits-Charged` and `X-Credits-Balance` when billed;
    /// a replayed answer with its own status, `Idempotent-Replayed: true` and a charge of 0.
    public func response() -> Response {
        switch self {
        case .answered(let content, let receipt):
            var response = content.response()
            if let receipt {
                response.headers[.xCreditsCharged] = receipt.charged.description
                response.headers[.xCreditsBalance] = receipt.balance.description
            }
            return response
        case .replay(let stored):
            var response = ResponseContent(stored: stored.body).response(status: HTTPResponse.Status(code: stored.status))
            response.headers[.idempotentReplayed] = "true"
            response.headers[.xCreditsCharged] = "0"
            return response
        }
    }
}
