import CortexCore
import Hummingbird
import NIOCore

extension Request {
    /// Collects the body up to `limit` bytes and parses it as JSON.
    ///
    /// The content type is not checked: `curl -d` sends form encoding by default, and the body decides.
    ///
    /// - Throws: ``APIError`` 413 past the limit, 400 for an empty or malformed body.
    func parseJSON(limit: Int) async throws -> JSONValue {
        guard let value = try await parseOptionalJSON(limit: limit) else {
            throw APIError.invalidJSON("request body is empty; expected a JSON object")
        }
        return value
    }

    /// Like ``parseJSON(limit:)``, but an empty body is `nil`, for routes whose body is optional.
    func parseOptionalJSON(limit: Int) async throws -> JSONValue? {
        let buffer = try await collectBody(limit: limit)
        guard buffer.readableBytes > 0 else { return nil }
        return try JSONValue.parse(buffer)
    }

    /// Collects the body up to `limit` bytes.
    ///
    /// - Throws: ``APIError`` 413 past the limit, whether `Content-Length` says so or the bytes do.
    func collectBody(limit: Int) async throws -> ByteBuffer {
        if let length = headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.payloadTooLarge(limit: limit)
        }
        do {
            return try await body.collect(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.payloadTooLarge(limit: limit)
        } catch is NIOTooManyBytesError {
            // A chunked body, whose length no header announced, went past the limit as it came.
            throw APIError.payloadTooLarge(limit: limit)
        }
    }

    /// Reads an optional `{"grace_s": N}` body (0 to 30 days); no body means no grace.
    func graceSeconds(limit: Int) async throws -> Double {
        guard let body = try await parseOptionalJSON(limit: limit), let value = body["grace_s"] else { return 0 }
        guard case .number(let seconds) = value, seconds >= 0, seconds <= 30 * 86_400 else {
            throw APIError.invalidInput("'grace_s' must be a number of seconds from 0 to 2592000")
        }
        return seconds
    }
}

extension JSONValue {
    /// Parses a whole body.
    ///
    /// - Throws: ``APIError`` 400 for an empty or malformed body, naming the byte where it broke.
    static func parse(_ buffer: ByteBuffer) throws(APIError) -> JSONValue {
        try parse(buffer) { bytes throws(JSONParser.Failure) in try JSONParser.parse(bytes) }
    }

    /// Parses a whole body, keeping the text of each top-level member's value (a proxy sends
    /// them on unchanged).
    ///
    /// - Throws: ``APIError`` 400 as ``parse(_:)``.
    static func parseKeepingMemberText(_ buffer: ByteBuffer) throws(APIError) -> (value: JSONValue, memberText: [String]) {
        try parse(buffer) { bytes throws(JSONParser.Failure) in try JSONParser.parseKeepingMemberText(bytes) }
    }

    private static func parse<T>(
        _ buffer: ByteBuffer, with parser: (UnsafeRawBufferPointer) throws(JSONParser.Failure) -> T
    ) throws(APIError) -> T {
        guard buffer.readableBytes > 0 else {
            throw APIError.invalidJSON("request body is empty; expected a JSON object")
        }
        let parsed = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(JSONParser.Failure) in try parser(bytes) }
        }
        switch parsed {
        case .success(let value):
            return value
        case .failure(let failure):
            throw APIError.invalidJSON("malformed JSON at byte \(failure.offset): \(failure.reason)")
        }
    }
}
