import CortexCore
import Foundation
import Hummingbird
import NIOFoundationCompat

extension Request {
    /// Collects the body up to `limit` bytes and decodes it as JSON.
    ///
    /// The content type is not checked: `curl -d` sends form encoding by default, and the body decides.
    ///
    /// - Throws: ``APIError`` 413 past the limit, 400 for malformed JSON.
    func decodeJSON<Value: Decodable>(_ type: Value.Type, limit: Int) async throws -> Value {
        if let length = headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.payloadTooLarge(limit: limit)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.payloadTooLarge(limit: limit)
        }
        guard buffer.readableBytes > 0 else {
            throw APIError.invalidJSON("request body is empty; expected a JSON object")
        }
        do {
            return try JSONDecoder().decode(Value.self, from: buffer)
        } catch let error as DecodingError {
            throw APIError.invalidJSON(Self.describe(error))
        }
    }

    /// A message that says where the body went wrong without echoing its contents.
    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return text.isEmpty ? "the body" : "'\(text)'"
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "missing field '\(key.stringValue)'" + (context.codingPath.isEmpty ? "" : " in \(parent)")
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) has the wrong type; expected \(Self.jsonName(of: type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) is null; expected \(Self.jsonName(of: type))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return "malformed JSON"
            }
            return "\(path(context.codingPath)) is invalid: \(context.debugDescription)"
        @unknown default:
            return "malformed JSON"
        }
    }

    private static func jsonName(of type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Double.Type, is Float.Type, is Int64.Type: "a number"
        case is Bool.Type: "a boolean"
        case is [Any].Type: "an array"
        default: type == [String: Any].self ? "an object" : "\(type)"
        }
    }
}
