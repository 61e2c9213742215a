import CortexCore
import Hummingbird
public import HummingbirdCore
public import Logging
public import NIOCore
import NIOHTTPTypesHTTP1
import Synchronization

/// Hummingbird's HTTP/1.1 channel with what a server facing the internet needs around it: read
/// deadlines per stage (``ConnectionTimeouts``), JSON answers for heads that do not parse, and a
/// cap on open connections (`MAX_CONNECTIONS`), past which a new connection is answered 503 and
/// closed at once while the open ones go on being served.
///
/// Hummingbird's own `idleTimeout` restarts on every read, so a client sending a byte every few
/// seconds would hold its connection forever; these deadlines cover each stage whole.
public struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    public typealias Value = HTTP1Channel.Value

    public let responder: HTTPChannelHandler.Responder
    private let base: HTTP1Channel
    private let limits: ConnectionTimeouts<ContinuousClock.Instant>.Limits
    private let open: OpenConnections
    private let metrics: ConnectionMetrics
    private let requestIDs: RequestIDGenerator

    /// - Parameter server: Its `IDLE_TIMEOUT_S`, `REQUEST_HEADER_TIMEOUT_S`, `REQUEST_BODY_TIMEOUT_S` and `MAX_CONNECTIONS`.
    init(
        responder: @escaping HTTPChannelHandler.Responder, server: CortexConfiguration.Server, metrics: ConnectionMetrics,
        requestIDs: RequestIDGenerator
    ) {
        self.responder = responder
        self.base = HTTP1Channel(responder: responder)
        self.limits = .init(
            idle: .seconds(server.idleTimeoutSeconds), header: .seconds(server.requestHeaderTimeoutSeconds),
            body: .seconds(server.requestBodyTimeoutSeconds))
        self.open = OpenConnections(maximum: server.maxConnections)
        self.metrics = metrics
        self.requestIDs = requestIDs
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let admitted = open.admit()
        metrics.opened(admitted: admitted)
        let open = open
        let metrics = metrics
        channel.closeFuture.whenComplete { _ in
            if admitted { open.release() }
            metrics.closed(admitted: admitted)
        }
        let limits = limits
        let requestIDs = requestIDs
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            guard admitted else {
                try pipeline.addHandler(RefusingHandler(requestIDs: requestIDs, maximum: open.maximum), position: .first)
                return value
            }
            let guarded = ConnectionGuard(limits: limits, metrics: metrics, requestIDs: requestIDs)
            let codec = try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)
            try pipeline.addHandler(ConnectionPartsHandler(guarded), position: .after(codec))
            try pipeline.addHandler(ConnectionBytesHandler(guarded), position: .first)
            return value
        }
    }

    public func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with Cortex's deadlines and connection cap (``GuardedHTTP1Channel``).
    static func guardedHTTP1(
        _ server: CortexConfiguration.Server, metrics: ConnectionMetrics, requestIDs: RequestIDGenerator
    ) -> HTTPServerBuilder {
        .init { responder in
            GuardedHTTP1Channel(responder: responder, server: server, metrics: metrics, requestIDs: requestIDs)
        }
    }
}

/// How many connections are open, against the cap.
final class OpenConnections: Sendable {
    let maximum: Int
    private let count = Atomic<Int>(0)

    init(maximum: Int) {
        self.maximum = maximum
    }

    /// Takes a place if one is free.
    func admit() -> Bool {
        var current = count.load(ordering: .relaxed)
        while current < maximum {
            let (exchanged, original) = count.compareExchange(
                expected: current, desired: current + 1, successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release() {
        count.subtract(1, ordering: .relaxed)
    }
}

/// A connection past `MAX_CONNECTIONS`: answered 503 with the JSON error and closed before
/// anything it sends is read.
final class RefusingHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let requestIDs: RequestIDGenerator
    private let maximum: Int

    init(requestIDs: RequestIDGenerator, maximum: Int) {
        self.requestIDs = requestIDs
        self.maximum = maximum
    }

    func handlerAdded(context: ChannelHandlerContext) {
        RawErrorAnswer.send(
            status: "503 Service Unavailable",
            error: APIError(
                status: 503, code: "too_many_connections",
                message: "the server has \(maximum) connections open, its MAX_CONNECTIONS; retry shortly",
                fields: [("retry_after_s", .double(1))]),
            requestID: requestIDs.next(), extraHeaders: "Retry-After: 1\r\n", on: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Nothing it sends is read.
    }
}
