/// An error a client sees: an HTTP status, a stable machine code and a human message.
///
/// Every error response has the shape
/// `{"error": "<message>", "code": "<code>", "request_id": "..."}` plus ``fields``,
/// which keeps it compatible with the Open Inference Protocol's `{"error": "..."}`.
///
/// ```swift
/// throw APIError.modelNotFound("lead-scoring")
/// ```
public struct APIError: Error, Sendable, Equatable {
    /// A value of an extra field in the error body.
    public enum FieldValue: Sendable, Equatable {
        case string(String)
        case int(Int64)
        case double(Double)
        /// An exact decimal, written as a JSON number from its text (credits, which are never floating point).
        case decimal(String)
        case strings([String])
    }

    /// The HTTP status code.
    public var status: Int
    /// A stable, machine-readable code such as `invalid_json`.
    public var code: String
    /// A message for a person; never contains secrets or request bodies.
    public var message: String
    /// Extra fields that help the client, e.g. `retry_after_s`.
    public var fields: [(name: String, value: FieldValue)]

    /// Creates an error.
    public init(status: Int, code: String, message: String, fields: [(name: String, value: FieldValue)] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
    }

    public static func == (lhs: APIError, rhs: APIError) -> Bool {
        lhs.status == rhs.status && lhs.code == rhs.code && lhs.message == rhs.message
            && lhs.fields.map(\.name) == rhs.fields.map(\.name) && lhs.fields.map(\.value) == rhs.fields.map(\.value)
    }
}

extension APIError {
    /// 400: the body is not valid JSON or does not have the expected structure.
    public static func invalidJSON(_ message: String) -> APIError {
        APIError(status: 400, code: "invalid_json", message: message)
    }

    /// 400: a tensor does not match the model's signature.
    public static func invalidTensor(_ message: String) -> APIError {
        APIError(status: 400, code: "invalid_tensor", message: message)
    }

    /// 422: the body is valid JSON but its values cannot be used.
    public static func invalidInput(_ message: String, fields: [(name: String, value: FieldValue)] = []) -> APIError {
        APIError(status: 422, code: "invalid_input", message: message, fields: fields)
    }

    /// 404: no model of that name (or version) is registered.
    public static func modelNotFound(_ name: String, version: String? = nil) -> APIError {
        let what = version.map { "model '\(name)' version '\($0)'" } ?? "model '\(name)'"
        return APIError(status: 404, code: "model_not_found", message: "\(what) is not served here")
    }

    /// 503: the model exists but cannot serve right now.
    public static func modelNotReady(_ name: String, reason: String) -> APIError {
        APIError(status: 503, code: "model_not_ready", message: "model '\(name)' is not ready: \(reason)")
    }

    /// 404: no route matches the method and path.
    public static func routeNotFound(method: String, path: String) -> APIError {
        APIError(status: 404, code: "not_found", message: "no route for \(method) \(path)")
    }

    /// 413: the body is larger than the configured limit.
    public static func payloadTooLarge(limit: Int) -> APIError {
        APIError(
            status: 413,
            code: "payload_too_large",
            message: "request body exceeds \(limit) bytes",
            fields: [("max_body_bytes", .int(Int64(limit)))]
        )
    }

    /// 500: something failed inside Cortex; the message must not leak internals.
    public static func inferenceFailed(model: String) -> APIError {
        APIError(status: 500, code: "inference_failed", message: "inference failed for model '\(model)'")
    }
}
