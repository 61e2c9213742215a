public import AsyncHTTPClient
import CortexCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix
import Synchronization

/// The HTTP both providers speak: JSON in and out over one `HTTPClient` with the provider's
/// timeouts, and the mapping of transport failures and statuses to ``ProviderError``.
struct ProviderHTTP: Sendable {
    let clients: LoopClients
    let baseURL: String
    /// For an `http` or `https` provider: its host, port and scheme and the base URL's path, for
    /// ``UpstreamHTTPClient``; `nil` for a URL it does not take (credentials in it), which goes
    /// through AsyncHTTPClient.
    let plain: PlainUpstream?
    let headers: [(String, String)]
    let timeouts: ProviderTimeouts
    /// The headers' values (the provider's key): whatever the provider says goes through it, so
    /// an error that echoes the request's `Authorization` never reaches a tenant or a log.
    let redactor: SecretRedactor
    /// Largest answer read.
    static let maximumBody = 16 << 20
    /// Connections kept open to one provider host at most (each concurrent request takes one).
    static let maximumConnectionsPerHost = 1024

    init(baseURL: String, headers: [(String, String)], timeouts: ProviderTimeouts) {
        self.clients = Self.clients(connect: timeouts.connect, read: timeouts.firstToken)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.plain = Self.plainAddress(self.baseURL)
        self.headers = headers
        self.timeouts = timeouts
        self.redactor = SecretRedactor(secrets: headers.flatMap { [$0.1, String($0.1.split(separator: " ").last ?? "")] })
    }

    /// Clients per pair of timeouts, for the life of the process (as `HTTPClient.shared` is):
    /// providers come and go with configuration reloads, their connection pools stay.
    private static let shared = Mutex<[[Duration]: LoopClients]>([:])

    /// The clients with these timeouts. The read timeout is the first-token timeout: the longest
    /// wait for the answer's head, for its first byte, and for any byte after (a stream silent
    /// that long is cut). It lives in the connection's own handler, so a request pays no timer
    /// and no racing task for it.
    static func clients(connect: Duration, read: Duration) -> LoopClients {
        shared.withLock { clients in
            if let existing = clients[[connect, read]] { return existing }
            var configuration = HTTPClient.Configuration()
            configuration.timeout = .init(connect: TimeAmount(connect), read: TimeAmount(read))
            // An LLM call holds its connection for seconds: AsyncHTTPClient's default of 8
            // connections per host would queue the ninth concurrent stream behind the others.
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = maximumConnectionsPerHost
            // A refused connection fails at once, so the chain falls back now rather than after
            // retrying for the whole connect timeout; the circuit breaker handles a provider that stays down.
            configuration.connectionPool.retryConnectionEstablishment = false
            // Cortex bootstraps no tracer; without this the client still parses each URL with
            // Foundation and builds a span's attributes for the no-op tracer (a twentieth of a call's CPU).
            configuration.tracing.tracer = nil
            let created = LoopClients(configuration: configuration)
            clients[[connect, read]] = created
            return created
        }
    }

    /// The total timeout over a body: AsyncHTTPClient's deadline covers the request up to the
    /// answer's head, silence after it is the read timeout's, and an answer that keeps coming is
    /// cut here once `total` has passed since the request was sent.
    func checkTotal(_ deadline: ContinuousClock.Instant) throws(ProviderError) {
        guard ContinuousClock.now <= deadline else { throw .timeout("total after \(timeouts.total)") }
    }

    /// `http://host[:port][/path]` as an address and a path; `nil` for anything else.
    static func plainAddress(_ url: String) -> PlainUpstream? {
        // A base URL's path is a prefix of each request's (no query can follow it).
        guard var plain = plainURL(url), !plain.path.contains("?") else { return nil }
        while plain.path.hasSuffix("/") { plain.path.removeLast() }
        return plain
    }

    /// Sends a request to `path` with the provider's headers (and a JSON body) and waits for the
    /// answer's head: a timeout when it takes longer than `firstToken` (the read timeout) or `total`.
    private func head(_ method: HTTPMethod, _ path: String, body: String?) async throws(ProviderError) -> ProviderAnswer {
        var fields = HTTPHeaders()
        for (name, value) in headers { fields.add(name: name, value: value) }
        for (name, value) in TracePropagation.headers { fields.replaceOrAdd(name: name, value: value) }
        if body != nil { fields.add(name: "Content-Type", value: "application/json") }
        do {
            if let plain {
                let request = UpstreamRequest(
                    method: method, address: plain.address, target: plain.path + path, headers: fields,
                    body: body.map { ByteBuffer(string: $0) })
                let answer = try await UpstreamHTTPClient.shared.execute(
                    request, connectTimeout: timeouts.connect, readTimeout: timeouts.firstToken,
                    deadline: .now() + TimeAmount(timeouts.total))
                return ProviderAnswer(status: answer.status, body: .upstream(answer.body))
            }
            var request = HTTPClientRequest(url: baseURL + path)
            request.method = method
            request.headers = fields
            if let body { request.body = .bytes(ByteBuffer(string: body)) }
            let response = try await clients.current.execute(request, timeout: TimeAmount(timeouts.total))
            return ProviderAnswer(status: Int(response.status.code), body: .client(response.body))
        } catch {
            throw Self.map(error)
        }
    }

    /// Throws the ``ProviderError`` of a non-2xx answer, its secrets redacted; its body is read only then.
    private func check(_ status: Int, body: @autoclosure () -> ByteBuffer) throws(ProviderError) {
        guard !(200..<300).contains(status) else { return }
        let message = redactor.redact(Self.errorMessage(in: body()))
        switch status {
        case 429: throw .rateLimited(message)
        case 500...: throw .upstream(status: status, message: message)
        default: throw .rejected(status: status, message: message)
        }
    }

    /// GET or POST `path`; returns the parsed JSON object of a 2xx answer.
    func json(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws(ProviderError) -> JSONValue {
        let deadline = ContinuousClock.now + timeouts.total
        let response = try await head(method, path, body: body)
        var bytes = ByteBuffer()
        do {
            var chunks = response.body.makeIterator()
            while let chunk = try await chunks.next() {
                try checkTotal(deadline)
                guard bytes.readableBytes + chunk.readableBytes <= Self.maximumBody else {
                    throw ProviderError.invalidResponse("an answer over \(Self.maximumBody) bytes")
                }
                var chunk = chunk
                bytes.writeBuffer(&chunk)
            }
        } catch let error as ProviderError {
            throw error
        } catch {
            throw Self.map(error)
        }
        try check(response.status, body: bytes)
        guard let object = Self.parse(bytes), case .object = object else {
            throw .invalidResponse("not a JSON object: \(redactor.redact(String(String(buffer: bytes).prefix(200))))")
        }
        return object
    }

    /// POSTs `body` and, once a 2xx head arrives (within the first-token timeout), reads the
    /// answer until its first delta, so that a failure or a silence before it is thrown (the chain
    /// may fall back). The stream returned goes on reading the same connection as it is iterated,
    /// in the consumer's task; a failure after the first delta ends it with that error.
    func stream(
        _ path: String,
        body: String,
        decode: @escaping @Sendable () -> any ChatStreamDecoder
    ) async throws(ProviderError) -> ChatDeltaStream {
        let deadline = ContinuousClock.now + timeouts.total
        let response = try await head(.POST, path, body: body)
        let status = response.status
        if !(200..<300).contains(status) {
            let bytes = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            try check(status, body: bytes)
        }
        let source = ChatDeltaStream.Source(body: response.body.makeIterator(), decoder: decode(), redactor: redactor) {
            () throws(ProviderError) in
            try checkTotal(deadline)
        }
        try await source.readFirst()
        return ChatDeltaStream(source: source)
    }

    /// The `error` of an OpenAI- or Ollama-style error body, else the body's start.
    static func errorMessage(in body: ByteBuffer) -> String {
        if let object = parse(body), let message = object["error"]?["message"]?.stringValue ?? object["error"]?.stringValue {
            return message
        }
        return String(String(buffer: body).prefix(200))
    }

    /// `bytes` parsed as JSON, or `nil`.
    static func parse(_ bytes: ByteBuffer) -> JSONValue? {
        bytes.withUnsafeReadableBytes { bytes in try? JSONParser.parse(bytes) }
    }

    static func map(_ error: any Error) -> ProviderError {
        if let error = error as? ProviderError { return error }
        if let failure = error as? UpstreamFailure {
            switch failure.kind {
            case .connectTimeout: return .timeout("connect")
            case .readTimeout: return .timeout("first token: nothing arrived within the first-token timeout")
            case .deadline: return .timeout("total")
            default: return .connection(failure.message)
            }
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return .timeout("connect")
            case .readTimeout: return .timeout("first token: nothing arrived within the first-token timeout")
            case .deadlineExceeded: return .timeout("total")
            default: return .connection("\(error)")
            }
        }
        return .connection("\(error)")
    }
}

/// The deltas of a streamed answer, read from the provider's connection as they are iterated: no
/// task of its own and no hand-off between tasks per token. Iterate it once, from one task at a
/// time (the request's, then its response writer's); dropping it closes the upstream request.
public struct ChatDeltaStream: AsyncSequence, Sendable {
    public typealias Element = ChatDelta

    let source: Source

    public func makeAsyncIterator() -> Iterator {
        Iterator(source: source)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let source: Source

        public mutating func next() async throws -> ChatDelta? {
            try await source.next()
        }
    }

    /// The connection's body, its decoder, and deltas decoded but not yet handed out.
    ///
    /// `@unchecked Sendable`: it is mutable, but a stream has one consumer, which hands it from the
    /// task that started the request to the task that writes the response, never sharing it.
    final class Source: @unchecked Sendable {
        private var body: ProviderAnswer.Chunks
        private var decoder: any ChatStreamDecoder
        private var pending: [ChatDelta] = []
        private var position = 0
        private var finished = false
        /// Set when the body ended before the decoder saw the stream's end.
        private var cut: ProviderError?
        private let checkChunk: () throws(ProviderError) -> Void
        private let redactor: SecretRedactor

        init(
            body: ProviderAnswer.Chunks, decoder: any ChatStreamDecoder, redactor: SecretRedactor,
            checkChunk: @escaping () throws(ProviderError) -> Void
        ) {
            self.body = body
            self.decoder = decoder
            self.redactor = redactor
            self.checkChunk = checkChunk
        }

        /// Reads until the first delta is decoded (or the answer ends cleanly without one).
        ///
        /// - Throws: A stream that ended before its end marker with nothing decoded, so the chain
        ///   can still fall back.
        func readFirst() async throws(ProviderError) {
            while pending.isEmpty, !finished { try await read() }
            if pending.isEmpty, let cut { throw cut }
        }

        func next() async throws(ProviderError) -> ChatDelta? {
            while position == pending.count {
                guard !finished else {
                    // The deltas before a cut are delivered first, then the cut.
                    if let cut {
                        self.cut = nil
                        throw cut
                    }
                    return nil
                }
                pending.removeAll(keepingCapacity: true)
                position = 0
                try await read()
            }
            defer { position += 1 }
            return pending[position]
        }

        /// Reads one chunk and decodes it, or finishes the decoder at the end of the body.
        private func read() async throws(ProviderError) {
            do {
                guard let chunk = try await body.next() else {
                    finished = true
                    pending.append(contentsOf: try decoder.finish())
                    // An end of the body is not an end of the answer: a provider killed, or a
                    // proxy cutting a response framed by the connection's close, ends it too.
                    if !decoder.ended {
                        cut = .streamCut("the body ended without \(decoder.endMarker)")
                    }
                    return
                }
                try checkChunk()
                pending.append(contentsOf: try decoder.feed(chunk.readableBytesView))
            } catch let error as ProviderError {
                // An error event or a bad line is the provider's text: it may echo the key.
                finished = true
                throw error.redacted(by: redactor)
            } catch {
                finished = true
                throw ProviderHTTP.map(error)
            }
        }
    }
}

/// An `http` or `https` provider's host, port and scheme, and its base URL's path.
struct PlainUpstream: Sendable {
    var address: UpstreamAddress
    var path: String
}

/// A provider's answer: its status, and its body from whichever client carried it.
struct ProviderAnswer: Sendable {
    var status: Int
    var body: Body

    enum Body: Sendable {
        /// Through ``UpstreamHTTPClient`` (`http` and `https`).
        case upstream(UpstreamBody)
        /// Through AsyncHTTPClient (a URL with credentials in it).
        case client(HTTPClientResponse.Body)

        func makeIterator() -> Chunks {
            switch self {
            case .upstream(let body): .upstream(body.makeAsyncIterator())
            case .client(let body): .client(body.makeAsyncIterator())
            }
        }

        /// The whole body, failing past `limit` bytes.
        func collect(upTo limit: Int) async throws -> ByteBuffer {
            switch self {
            case .upstream(let body): try await body.collect(upTo: limit)
            case .client(let body): try await body.collect(upTo: limit)
            }
        }
    }

    /// The body's chunks as they are read.
    enum Chunks {
        case upstream(UpstreamBody.Iterator)
        case client(HTTPClientResponse.Body.AsyncIterator)

        mutating func next() async throws -> ByteBuffer? {
            switch self {
            case .upstream(var iterator):
                defer { self = .upstream(iterator) }
                return try await iterator.next()
            case .client(var iterator):
                defer { self = .client(iterator) }
                return try await iterator.next()
            }
        }
    }
}

/// One `HTTPClient` per event loop of NIO's shared group, all with one configuration.
///
/// Cortex runs its tasks on those loops, so a call made on a loop uses connections that live on
/// it: the request goes out and the answer comes back on the thread the handler already runs
/// on, without waking another thread twice per call. A call from anywhere else (a test's own
/// threads) takes a client on the whole group. (bench/BareHummingbird's proxy uses it too, so
/// its floor has the same client path as Cortex's providers.)
public final class LoopClients: Sendable {
    private let byLoop: [ObjectIdentifier: HTTPClient]
    private let anyLoop: HTTPClient

    public init(configuration: HTTPClient.Configuration) {
        var byLoop: [ObjectIdentifier: HTTPClient] = [:]
        for loop in NIOSingletons.posixEventLoopGroup.makeIterator() {
            byLoop[ObjectIdentifier(loop)] = HTTPClient(eventLoopGroupProvider: .shared(loop), configuration: configuration)
        }
        self.byLoop = byLoop
        self.anyLoop = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// The client whose connections live on the calling thread's event loop, if it has one.
    public var current: HTTPClient {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop, let client = byLoop[ObjectIdentifier(loop)] else {
            return anyLoop
        }
        return client
    }
}
