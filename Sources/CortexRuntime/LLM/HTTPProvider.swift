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

    /// Sends `request` and waits for the answer's head: a timeout when it takes longer than
    /// `firstToken`; the whole request (body included) is bounded by `total`.
    private func head(_ request: HTTPClientRequest) async throws(ProviderError) -> HTTPClientResponse {
        let (client, timeouts) = (self.client, self.timeouts)
        do {
            return try await withThrowingTaskGroup(of: HTTPClientResponse?.self) { group in
                group.addTask { try await client.execute(request, timeout: TimeAmount(timeouts.total)) }
                group.addTask {
                    try await Task.sleep(for: timeouts.firstToken)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let response = first else {
                    throw ProviderError.timeout("first token after \(timeouts.firstToken)")
                }
                return response
            }
        } catch let error as ProviderError {
            throw error
        } catch {
            throw Self.map(error)
        }
    }

    /// A request to `path` with the provider's headers and a JSON body.
    private func request(_ method: HTTPMethod, _ path: String, body: [String: Any]?) throws(ProviderError) -> HTTPClientRequest {
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
        return request
    }

    /// Throws the ``ProviderError`` of a non-2xx answer.
    private static func check(_ status: Int, body text: String) throws(ProviderError) {
        guard !(200..<300).contains(status) else { return }
        let message = errorMessage(in: text)
        switch status {
        case 429: throw .rateLimited(message)
        case 500...: throw .upstream(status: status, message: message)
        default: throw .rejected(status: status, message: message)
        }
    }

    /// GET or POST `path`; returns the parsed JSON object of a 2xx answer.
    func json(_ method: HTTPMethod, _ path: String, body: [String: Any]? = nil) async throws(ProviderError) -> [String: Any] {
        let response = try await head(try request(method, path, body: body))
        let bytes: ByteBuffer
        do {
            bytes = try await response.body.collect(upTo: Self.maximumBody)
        } catch {
            throw Self.map(error)
        }
        try Self.check(Int(response.status.code), body: String(buffer: bytes))
        guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] else {
            throw .invalidResponse("not a JSON object: \(String(buffer: bytes).prefix(200))")
        }
        return object
    }

    /// POSTs `body` and, once a 2xx head arrives (within the first-token timeout), streams the
    /// answer's bytes through `decode`, yielding its deltas. A failure before the head is thrown
    /// (the chain may fall back); a failure after it ends the stream with that error.
    func stream(
        _ path: String,
        body: [String: Any],
        decode: @escaping @Sendable () -> any ChatStreamDecoder
    ) async throws(ProviderError) -> AsyncThrowingStream<ChatDelta, any Error> {
        let response = try await head(try request(.POST, path, body: body))
        let status = Int(response.status.code)
        if !(200..<300).contains(status) {
            let text = (try? await response.body.collect(upTo: 1 << 20)).map { String(buffer: $0) } ?? ""
            try Self.check(status, body: text)
        }
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ChatDelta.self)
        let started = FirstDelta()
        let task = Task {
            var decoder = decode()
            do {
                for try await chunk in response.body {
                    for delta in try decoder.feed(chunk.readableBytesView) {
                        continuation.yield(delta)
                        started.signal(nil)
                    }
                }
                for delta in try decoder.finish() { continuation.yield(delta) }
                started.signal(nil)
                continuation.finish()
            } catch {
                let failure = (error as? ProviderError) ?? Self.map(error)
                started.signal(failure)
                continuation.finish(throwing: failure)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        // Until the first delta the provider may still be replaced: a failure or a silence longer
        // than the first-token timeout is thrown, not streamed.
        let firstToken = timeouts.firstToken
        // `nil`: the first delta arrived (or the stream ended cleanly); else why not.
        let failure = await withTaskGroup(of: Optional<ProviderError>.self) { group -> ProviderError? in
            group.addTask { await started.wait() }
            group.addTask {
                try? await Task.sleep(for: firstToken)
                return ProviderError.timeout("first token after \(firstToken)")
            }
            defer { group.cancelAll() }
            guard let first = await group.next() else { return nil }
            return first
        }
        if let failure {
            task.cancel()
            throw failure
        }
        return stream
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

/// Signals, once, that a stream delivered its first delta (`nil`) or failed before it.
final class FirstDelta: Sendable {
    private enum State {
        case waiting([CheckedContinuation<ProviderError?, Never>])
        case done(ProviderError?)
    }

    private let state = Mutex(State.waiting([]))

    func signal(_ failure: ProviderError?) {
        let waiters = state.withLock { state -> [CheckedContinuation<ProviderError?, Never>] in
            guard case .waiting(let waiters) = state else { return [] }
            state = .done(failure)
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: failure) }
    }

    /// Waits for the signal; `nil` means the first delta arrived (or the stream ended cleanly).
    func wait() async -> ProviderError? {
        await withCheckedContinuation { (continuation: CheckedContinuation<ProviderError?, Never>) in
            let finished = state.withLock { state -> (done: Bool, failure: ProviderError?) in
                switch state {
                case .waiting(let waiters):
                    state = .waiting(waiters + [continuation])
                    return (false, nil)
                case .done(let failure):
                    return (true, failure)
                }
            }
            if finished.done { continuation.resume(returning: finished.failure) }
        }
    }
}
