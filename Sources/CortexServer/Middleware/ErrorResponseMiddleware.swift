import CortexCore
import CortexStore
public import Hummingbird
import Logging
import NIOHTTP1

/// Turns every error thrown below it into the one JSON error shape, with the request id.
///
/// ``APIError`` keeps its status and code; Hummingbird's own errors (404 for an unknown
/// route, 405, 413) are mapped to codes; anything else is a 500 whose details stay in the log.
public struct ErrorResponseMiddleware<Context: RequestIDContext>: RouterMiddleware {
    /// Creates the middleware.
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return Self.response(for: error, request: request, context: context)
        }
    }

    /// The JSON error response for anything thrown while handling `request`.
    static func response(for error: any Error, request: Request, context: Context) -> Response {
        switch error {
        case let error as APIError:
            var response = error.response(requestID: context.requestID)
            // Too large: the rest of the body is not read, and the connection closes after this.
            if error.status == 413 { response.headers[.connection] = "close" }
            return response
        case let error as HTTPError:
            return apiError(for: error, request: request).response(requestID: context.requestID)
        case let error as StoreFailure:
            // The database cannot be used (a file changed under it, a connection lost): not the
            // client's fault, and not a bug to hunt either; the reason stays in the log.
            context.logger.error("DB_UNAVAILABLE", metadata: ["request_id": "\(context.requestID)", "error": "\(error)"])
            return APIError(
                status: 503, code: "database_unavailable", message: "the database cannot be used right now; retry shortly",
                fields: [("retry_after_s", .double(1))]
            )
            .response(requestID: context.requestID)
        case let error as HTTPParserError:
            // The body broke the HTTP framing (a bad chunk size, a short chunk, a missing CRLF):
            // the client's fault. The connection cannot carry another request after it.
            var response = APIError(status: 400, code: "malformed_request", message: "the request body is not valid HTTP/1.1: \(error)")
                .response(requestID: context.requestID)
            response.headers[.connection] = "close"
            return response
        default:
            context.logger.error(
                "UNHANDLED_ERROR",
                metadata: ["request_id": "\(context.requestID)", "error_type": "\(type(of: error))", "error": "\(error)"]
            )
            let apiError = APIError(status: 500, code: "internal_error", message: "internal error; see the server log for this request id")
            return apiError.response(requestID: context.requestID)
        }
    }

    static func apiError(for error: HTTPError, request: Request) -> APIError {
        let path = request.uri.path
        switch error.status {
        case .notFound:
            return .routeNotFound(method: request.method.rawValue, path: path)
        case .methodNotAllowed:
            return APIError(status: 405, code: "method_not_allowed", message: "method not allowed on \(path)")
        case .contentTooLarge:
            return APIError(status: 413, code: "payload_too_large", message: "request body too large")
        default:
            let code = error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
            return APIError(status: error.status.code, code: code, message: error.body ?? error.status.reasonPhrase)
        }
    }
}

extension APIError {
    /// The JSON error response: `{"error": ..., "code": ..., "request_id": ..., ...fields}`.
    func response(requestID: String) -> Response {
        var body = JSONWriter()
        body.beginObject()
        body.key("error")
        body.string(message)
        body.key("code")
        body.string(code)
        body.key("request_id")
        body.string(requestID)
        for field in fields {
            body.key(field.name)
            switch field.value {
            case .string(let text): body.string(text)
            case .int(let number): body.raw(String(number))
            case .double(let number): body.number(number)
            case .decimal(let text): body.raw(text)
            case .strings(let list):
                body.beginArray()
                for item in list { body.string(item) }
                body.endArray()
            }
        }
        body.endObject()
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let retry = fields.first(where: { $0.name == "retry_after_s" }), case .double(let seconds) = retry.value {
            headers[.retryAfter] = String(Int(seconds.rounded(.up)))
        }
        return Response(
            status: HTTPResponse.Status(code: status),
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: body.text))
        )
    }
}
