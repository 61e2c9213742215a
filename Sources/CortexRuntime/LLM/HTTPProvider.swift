import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization

/// The HTTP both providers speak: JSON in and out over one `HTTPClient` with the provider's
/// timeouts, and the mapping of transport failures and statuses to ``ProviderError``.
struct ProviderHTTP: Sendable {
    let client: HTTPClient
    let baseURL: String
    let headers: [(String, String)]
    let timeouts: ProviderTimeouts
    /// Largest answer read.
    static let maximumBody = 16 << 20

    init(baseURL: String, headers: [(String, String)], timeouts: ProviderTimeouts) {
        self.client = Self.client(connectTimeout: timeouts.connect)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.headers = headers
        self.timeouts = timeouts
    }

    /// One client per connect timeout, for the life of the process (as `HTTPClient.shared` is):
    /// providers come and go with configuration reloads, their connection pools stay.
    private static let clients = Mutex<[Duration: HTTPClient]>([:])

    static func client(connectTimeout: Duration) -> HTTPClient {
        clients.withLock { clients in
            if let client = clients[connectTimeout] { return client }
            var configuration = HTTPClient.Configuration()
            configuration.timeout = .init(connect: TimeAmount(connectTimeout))
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            clients[connectTimeout] = client
            return client
        }
    }

    /// Sends `request`, failing with a timeout when the answer's head takes longer than
    /// `firstToken` or the whole answer longer than `total`.
    private func execute(_ request: HTTPClientRequest) async throws -> (status: Int, body: ByteBuffer) {
        let (client, timeouts) = (self.client, self.timeouts)
        return try await withThrowingTaskGroup(of: (status: Int, body: ByteBuffer)?.self) { group in
            group.addTask {
                let response = try await client.execute(request, timeout: TimeAmount(timeouts.total))
                return (Int(response.status.code), try await response.body.collect(upTo: Self.maximumBody))
            }
            group.addTask {
                try await Task.sleep(for: timeouts.firstToken)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let answer = first else {
                throw ProviderError.timeout("first token after \(timeouts.firstToken)")
            }
            return answer
        }
    }

    /// GET or POST `path`; returns the parsed JSON object of a 2xx answer.
    func json(_ method: HTTPMethod, _ path: String, body: [String: Any]? = nil) async throws(ProviderError) -> [String: Any] {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            do {
                request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
            } catch {
                throw .invalidResponse("request not encodable: \(error)")
            }
        }
        let status: Int
        let bytes: ByteBuffer
        do {
            (status, bytes) = try await execute(request)
        } catch let error as ProviderError {
            throw error
        } catch {
            throw Self.map(error)
        }
        let text = String(buffer: bytes)
        guard (200..<300).contains(status) else {
            let message = Self.errorMessage(in: text)
            switch status {
            case 429: throw .rateLimited(message)
            case 500...: throw .upstream(status: status, message: message)
            default: throw .rejected(status: status, message: message)
            }
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] else {
            throw .invalidResponse("not a JSON object: \(text.prefix(200))")
        }
        return object
    }

    /// The `error` of an OpenAI- or Ollama-style error body, else the body's start.
    static func errorMessage(in text: String) -> String {
        if let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] {
            if let error = object["error"] as? [String: Any], let message = error["message"] as? String { return message }
            if let message = object["error"] as? String { return message }
        }
        return String(text.prefix(200))
    }

    static func map(_ error: any Error) -> ProviderError {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return .timeout("connect")
            case .readTimeout: return .timeout("first token")
            case .deadlineExceeded: return .timeout("total")
            default: return .connection("\(error)")
            }
        }
        return .connection("\(error)")
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
