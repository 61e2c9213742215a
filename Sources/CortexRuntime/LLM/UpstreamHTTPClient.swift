import CortexCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// HTTP/1.1 over TCP, or TLS for `https`, to an LLM provider, built for proxying: a keep-alive pool per event
/// loop of NIO's shared group, so a request's upstream connection lives on the thread its task
/// already runs on; the request head and body in one write; the answer's head and body parsed
/// by NIO's HTTP decoder and handed to the caller chunk by chunk as they are read, with
/// backpressure (the socket is read only when the caller asks for more).
///
/// TLS is swift-nio-ssl's, verifying the certificate against the system's roots and the host
/// (SNI and name; an IP address is checked against the certificate's IP addresses).
///
/// What it leaves out, against AsyncHTTPClient (still used for the warm-up's polls and model
/// lists): redirects, decompression, proxies, HTTP/2. Its
/// timeouts are the providers': connect, read (the longest silence: before the head, between
/// chunks) and a deadline for the head.
///
/// A kept-alive connection the server closed while it sat in the pool is noticed when it goes
/// inactive, and dropped; one that dies under a request before any byte of the answer came back
/// (the server closed it as the request left) is retried once on a new connection.
final class UpstreamHTTPClient: Sendable {
    /// The process's client.
    static let shared = UpstreamHTTPClient()

    private let pools: [ObjectIdentifier: UpstreamPool]
    /// For callers on no loop of the group (Cortex runs its tasks on them; tests may not): one
    /// pool, so their connections are reused too.
    private let offLoop: UpstreamPool

    /// - Parameter tls: How `https` connections verify their server (tests trust their own CA).
    init(tls: TLSConfiguration = .makeClientConfiguration()) {
        // Made once: a context loads the trust roots. Without one, `https` requests fail alone.
        let context = Result { try NIOSSLContext(configuration: tls) }
        var pools: [ObjectIdentifier: UpstreamPool] = [:]
        for loop in NIOSingletons.posixEventLoopGroup.makeIterator() {
            pools[ObjectIdentifier(loop)] = UpstreamPool(loop: loop, tls: context)
        }
        self.pools = pools
        // swift-format-ignore: NeverForceUnwrap
        self.offLoop = pools.values.first!
    }

    /// Sends `request` and returns once the answer's head has arrived.
    ///
    /// - Throws: ``UpstreamFailure``.
    func execute(
        _ request: UpstreamRequest,
        connectTimeout: Duration,
        readTimeout: Duration,
        deadline: NIODeadline
    ) async throws -> UpstreamResponse {
        let pool = MultiThreadedEventLoopGroup.currentEventLoop.flatMap { pools[ObjectIdentifier($0)] } ?? offLoop
        let timeouts = UpstreamTimeouts(connect: TimeAmount(connectTimeout), read: TimeAmount(readTimeout), deadline: deadline)
        for attempt in 0..<2 {
            // The retry opens a new connection: another idle one may be as stale as the first.
            let connection = try await pool.lease(request.address, fresh: attempt > 0, timeouts: timeouts)
            do {
                let head = try await connection.send(request, timeouts: timeouts)
                return UpstreamResponse(status: Int(head.status.code), headers: head.headers, body: UpstreamBody(connection: connection))
            } catch let failure as UpstreamFailure where failure.kind == .closedBeforeAnswer && connection.wasReused && attempt == 0 {
                continue
            }
        }
        throw UpstreamFailure(.closedBeforeAnswer, "the connection closed before the answer")
    }
}

/// Where a request goes: `host` and `port`, over TLS when `tls` (an `https` URL).
struct UpstreamAddress: Hashable, Sendable {
    var host: String
    var port: Int
    var tls = false
}

/// A request to an upstream.
struct UpstreamRequest: Sendable {
    var method: HTTPMethod
    var address: UpstreamAddress
    /// The path and query.
    var target: String
    var headers: HTTPHeaders
    var body: ByteBuffer?
}

/// The answer's head, and its body to read.
struct UpstreamResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: UpstreamBody
}

/// What went wrong talking to an upstream.
struct UpstreamFailure: Error, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case connectTimeout
        case connectFailed
        /// Nothing arrived for the read timeout.
        case readTimeout
        /// The deadline passed before the answer's head.
        case deadline
        /// The connection closed (or failed) before any byte of the answer.
        case closedBeforeAnswer
        /// The connection closed (or failed) in the middle of the answer.
        case closedDuringAnswer
        /// The answer was not HTTP/1.1 as expected.
        case invalidAnswer
    }

    var kind: Kind
    var message: String
    var description: String { message }

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

struct UpstreamTimeouts: Sendable {
    var connect: TimeAmount
    var read: TimeAmount
    var deadline: NIODeadline
}

/// An answer's body, read from its connection as it is iterated. Iterate it once; dropping it
/// before its end closes the connection (the upstream sees the request cancelled).
struct UpstreamBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let connection: UpstreamConnection

    func makeAsyncIterator() -> Iterator { Iterator(connection: connection) }

    struct Iterator: AsyncIteratorProtocol {
        let connection: UpstreamConnection

        mutating func next() async throws -> ByteBuffer? {
            try await connection.nextChunk()
        }
    }

    /// The whole body, failing past `limit` bytes.
    func collect(upTo limit: Int) async throws -> ByteBuffer {
        var bytes = ByteBuffer()
        for try await var chunk in self {
            guard bytes.readableBytes + chunk.readableBytes <= limit else {
                connection.abandon()
                throw UpstreamFailure(.invalidAnswer, "an answer over \(limit) bytes")
            }
            bytes.writeBuffer(&chunk)
        }
        return bytes
    }
}

/// The idle connections of one event loop, touched only on that loop.
final class UpstreamPool: @unchecked Sendable {
    // @unchecked: `idle` is read and written on `loop` only (asserted in debug builds).
    let loop: any EventLoop
    private var byAddress: [UpstreamAddress: [UpstreamConnection]] = [:]
    /// Idle connections kept per upstream; more are closed when their answer ends.
    static let maximumIdle = 256

    /// The TLS context for `https` upstreams, or why there is none.
    private let tls: Result<NIOSSLContext, any Error>

    init(loop: any EventLoop, tls: Result<NIOSSLContext, any Error>) {
        self.loop = loop
        self.tls = tls
    }

    /// An open connection to `address`: an idle one that is still open, or a new one.
    func lease(_ address: UpstreamAddress, fresh: Bool, timeouts: UpstreamTimeouts) async throws -> UpstreamConnection {
        if !fresh, loop.inEventLoop, let connection = takeIdle(address) { return connection }
        return try await loop.flatSubmit { [self] () -> EventLoopFuture<UpstreamConnection> in
            if !fresh, let connection = takeIdle(address) { return loop.makeSucceededFuture(connection) }
            return connect(address, timeouts: timeouts)
        }.get()
    }

    private func takeIdle(_ address: UpstreamAddress) -> UpstreamConnection? {
        loop.assertInEventLoop()
        while var connections = byAddress[address], let connection = connections.popLast() {
            byAddress[address] = connections
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    private func connect(_ address: UpstreamAddress, timeouts: UpstreamTimeouts) -> EventLoopFuture<UpstreamConnection> {
        ClientBootstrap(group: loop)
            .connectTimeout(timeouts.connect)
            .channelOption(.autoRead, value: false)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { [tls] channel in
                channel.eventLoop.makeCompletedFuture {
                    if address.tls {
                        let context = try tls.get()
                        // SNI takes a name only; an IP address is verified against the certificate's.
                        let name = IPAddress.isLiteral(address.host) ? nil : address.host
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: name))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamResponseHandler())
                }
            }
            .connect(host: address.host, port: address.port)
            .flatMapThrowing { [self] channel in
                let handler = try channel.pipeline.syncOperations.handler(type: UpstreamResponseHandler.self)
                return UpstreamConnection(channel: channel, handler: handler, address: address, pool: self)
            }
            .flatMapErrorThrowing { error in
                if case ChannelError.connectTimeout = error {
                    throw UpstreamFailure(.connectTimeout, "connecting to \(address.host):\(address.port) timed out")
                }
                throw UpstreamFailure(.connectFailed, "connecting to \(address.host):\(address.port): \(error)")
            }
    }

    /// Takes back a connection whose answer ended and that may be kept alive; on the loop.
    func release(_ connection: UpstreamConnection) {
        loop.assertInEventLoop()
        var connections = byAddress[connection.address, default: []]
        guard connection.channel.isActive, connections.count < Self.maximumIdle else {
            connection.channel.close(promise: nil)
            return
        }
        connections.append(connection)
        byAddress[connection.address] = connections
        connection.watchWhileIdle()
    }
}

/// One connection, leased to one request at a time.
final class UpstreamConnection: @unchecked Sendable {
    // @unchecked: `keepAlive`, `finished`, `reused` and `timeouts` are read and written on the
    // channel's loop only (every method hops there first), and by one request at a time.
    let channel: any Channel
    let address: UpstreamAddress
    private let handler: NIOLoopBound<UpstreamResponseHandler>
    private let pool: UpstreamPool
    private var keepAlive = false
    private var finished = true
    private var timeouts = UpstreamTimeouts(connect: .seconds(1), read: .seconds(1), deadline: .distantFuture)
    private(set) var wasReused = false
    private var uses = 0

    init(channel: any Channel, handler: UpstreamResponseHandler, address: UpstreamAddress, pool: UpstreamPool) {
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.address = address
        self.pool = pool
    }

    deinit {
        // Dropped in the middle of an answer: nobody will read the rest, and the connection
        // cannot carry another request.
        if !finished { channel.close(promise: nil) }
    }

    /// Writes the request (head, body and end in one flush) and waits for the answer's head.
    func send(_ request: UpstreamRequest, timeouts: UpstreamTimeouts) async throws -> HTTPResponseHead {
        try await onLoop { [self] in
            uses += 1
            wasReused = uses > 1
            finished = false
            self.timeouts = timeouts
            let handler = self.handler.value
            // Closed since it was leased (its close was read in between): nothing is sent, and
            // the caller may retry on a new connection.
            guard channel.isActive, handler.start() else {
                throw UpstreamFailure(.closedBeforeAnswer, "the connection closed before the request was sent")
            }
            var head = HTTPRequestHead(version: .http1_1, method: request.method, uri: request.target, headers: request.headers)
            if !head.headers.contains(name: "host") {
                let standard = address.port == (address.tls ? 443 : 80)
                head.headers.add(name: "Host", value: standard ? address.host : "\(address.host):\(address.port)")
            }
            if let body = request.body {
                head.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            } else {
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
            }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            return handler.next(read: timeouts.read, deadline: timeouts.deadline).flatMapThrowing { part in
                guard case .head(let head) = part else { throw UpstreamFailure(.invalidAnswer, "an answer without a head") }
                self.keepAlive = head.isKeepAlive
                return head
            }
        }
    }

    /// The next chunk of the body, or `nil` at its end (the connection then goes back to the pool).
    func nextChunk() async throws -> ByteBuffer? {
        try await onLoop { [self] in
            guard !finished else { return channel.eventLoop.makeSucceededFuture(nil) }
            return handler.value.next(read: timeouts.read, deadline: .distantFuture).flatMapThrowing { part in
                switch part {
                case .body(let chunk): return chunk
                case .end:
                    self.finished = true
                    if self.keepAlive { self.pool.release(self) } else { self.channel.close(promise: nil) }
                    return nil
                case .head: throw UpstreamFailure(.invalidAnswer, "a second head in one answer")
                }
            }.flatMapErrorThrowing { error in
                self.finished = true
                self.channel.close(promise: nil)
                throw error
            }
        }
    }

    /// Reads the idle connection's socket, so that the server closing it is noticed at once (it
    /// then leaves the pool as inactive); on the loop.
    func watchWhileIdle() {
        handler.value.watchWhileIdle()
    }

    /// Gives up on the rest of the answer: the connection closes.
    func abandon() {
        channel.eventLoop.execute { [self] in
            finished = true
            channel.close(promise: nil)
        }
    }

    private func onLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> EventLoopFuture<T>) async throws -> T {
        let loop = channel.eventLoop
        if loop.inEventLoop { return try await body().get() }
        return try await loop.flatSubmit { () -> EventLoopFuture<T> in
            do { return try body() } catch { return loop.makeFailedFuture(error) }
        }.get()
    }
}

/// Hands the decoder's parts to the one waiting reader; reads the socket only when asked
/// (`autoRead` is off), and fails the reader when nothing arrives in time or the connection ends.
final class UpstreamResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private var context: ChannelHandlerContext?
    /// The channel's loop, kept after the handler is removed (parts read before the close are still handed out).
    private var loop: (any EventLoop)?
    private var buffered = CircularBuffer<HTTPClientResponsePart>()
    private var waiter: EventLoopPromise<HTTPClientResponsePart>?
    private var timer: Scheduled<Void>?
    private var failure: UpstreamFailure?
    /// Whether any part of the current answer arrived.
    private var answered = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loop = context.eventLoop
    }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Whether the connection sits in the pool, between answers: anything read then is the
    /// server's close, or bytes no request asked for (the connection is closed either way).
    private var idle = false

    /// A new request goes out on this connection; `false` when the connection already failed.
    func start() -> Bool {
        guard failure == nil else { return false }
        idle = false
        answered = false
        buffered.removeAll(keepingCapacity: true)
        return true
    }

    /// The connection went back to the pool: read, to notice a close.
    func watchWhileIdle() {
        idle = true
        context?.read()
    }

    /// The next part of the answer: buffered, or read from the socket.
    func next(read: TimeAmount, deadline: NIODeadline) -> EventLoopFuture<HTTPClientResponsePart> {
        // Parts read before a close (a body framed by the close ends with it) come first.
        if !buffered.isEmpty, let loop { return loop.makeSucceededFuture(buffered.removeFirst()) }
        if let failure, let loop { return loop.makeFailedFuture(failure) }
        guard let context else {
            return failedFuture(UpstreamFailure(answered ? .closedDuringAnswer : .closedBeforeAnswer, "the connection is closed"))
        }
        let promise = context.eventLoop.makePromise(of: HTTPClientResponsePart.self)
        waiter = promise
        let silence = NIODeadline.now() + read
        let (when, kind) = deadline < silence ? (deadline, UpstreamFailure.Kind.deadline) : (silence, .readTimeout)
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [weak self] in
            self?.fail(
                UpstreamFailure(kind, kind == .deadline ? "the deadline passed before the answer" : "nothing arrived within \(read)"))
            context.close(promise: nil)
        }
        context.read()
        return promise.futureResult
    }

    private func failedFuture(_ failure: UpstreamFailure) -> EventLoopFuture<HTTPClientResponsePart> {
        (loop ?? MultiThreadedEventLoopGroup.singleton.any()).makeFailedFuture(failure)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard !idle else {
            fail(UpstreamFailure(.invalidAnswer, "the server sent bytes no request asked for"))
            context.close(promise: nil)
            return
        }
        answered = true
        if let waiter {
            self.waiter = nil
            timer?.cancel()
            timer = nil
            waiter.succeed(part)
        } else {
            buffered.append(part)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The reader still waits (the read brought nothing it can use yet, such as half a chunk's framing).
        if waiter != nil { context.read() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(UpstreamFailure(answered && !idle ? .closedDuringAnswer : .closedBeforeAnswer, "the connection failed: \(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(UpstreamFailure(answered && !idle ? .closedDuringAnswer : .closedBeforeAnswer, "the connection closed"))
        context.fireChannelInactive()
    }

    private func fail(_ failure: UpstreamFailure) {
        if self.failure == nil { self.failure = failure }
        timer?.cancel()
        timer = nil
        guard let waiter else { return }
        self.waiter = nil
        waiter.fail(failure)
    }
}
