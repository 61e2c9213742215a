import CortexCore
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// What guards one connection: its read deadlines (``ConnectionTimeouts``) and the clean refusals
/// that need the raw socket, a 408 for a request sent too slowly and a JSON 400 or 431 for a head
/// that does not parse. Two handlers share it: ``ConnectionBytesHandler`` first in the pipeline
/// (it sees the first byte of a request, and writes raw answers) and ``ConnectionPartsHandler``
/// after the HTTP codec (it sees heads, ends and answers).
///
/// Confined to the connection's event loop, as its handlers are.
final class ConnectionGuard {
    private var timeouts: ConnectionTimeouts<ContinuousClock.Instant>
    private var timer: Scheduled<Void>?
    private var timerDeadline: ContinuousClock.Instant?
    /// The bytes handler's context: raw answers are written there, below the HTTP encoder.
    fileprivate var rawContext: ChannelHandlerContext?
    private let metrics: ConnectionMetrics
    private let requestIDs: RequestIDGenerator

    init(limits: ConnectionTimeouts<ContinuousClock.Instant>.Limits, metrics: ConnectionMetrics, requestIDs: RequestIDGenerator) {
        self.timeouts = ConnectionTimeouts(limits: limits)
        self.metrics = metrics
        self.requestIDs = requestIDs
    }

    /// Whether a request's head has been decoded and its answer not yet finished: a parse error
    /// then belongs to that request (its body), and goes to its handler.
    fileprivate var insideRequest: Bool {
        switch timeouts.stage {
        case .idle, .head, .closed: false
        case .body, .waiting: true
        }
    }

    fileprivate func opened(_ context: ChannelHandlerContext) {
        perform(timeouts.opened(at: .now), context)
    }

    fileprivate func bytesRead(_ context: ChannelHandlerContext) {
        perform(timeouts.bytesRead(at: .now), context)
    }

    fileprivate func partRead(_ part: HTTPRequestPart, _ context: ChannelHandlerContext) {
        switch part {
        case .head: perform(timeouts.headRead(at: .now), context)
        case .body: break
        case .end: perform(timeouts.endRead(), context)
        }
    }

    fileprivate func partWritten(_ part: HTTPResponsePart, _ context: ChannelHandlerContext) {
        switch part {
        case .head(let head) where head.status.kind != .informational: timeouts.answerStarted()
        case .head, .body: break
        case .end: perform(timeouts.answerEnded(at: .now), context)
        }
    }

    fileprivate func closed() {
        timeouts.closed()
        timer?.cancel()
        timer = nil
        rawContext = nil
    }

    /// Answers a head that did not parse: 431 for one too large, else 400; JSON with a request id.
    fileprivate func refuse(_ error: HTTPParserError) {
        let tooLarge = error == .headerOverflow
        write(
            status: tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request",
            error: APIError(
                status: tooLarge ? 431 : 400,
                code: tooLarge ? "headers_too_large" : "malformed_request",
                message: tooLarge
                    ? "the request line or headers are too large"
                    : "the request is not valid HTTP/1.1: \(error)"
            )
        )
    }

    private func perform(_ action: ConnectionTimeouts<ContinuousClock.Instant>.Action, _ context: ChannelHandlerContext) {
        switch action {
        case .none:
            return
        case .schedule(let deadline):
            // One timer: a later deadline waits for it to fire and re-arm, an earlier one replaces it.
            if let timerDeadline, timerDeadline <= deadline, timer != nil { return }
            timer?.cancel()
            timerDeadline = deadline
            timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: TimeAmount(deadline - .now)) { [self] in
                timer = nil
                timerDeadline = nil
                perform(timeouts.timerFired(at: .now), context)
            }
        case .close:
            context.close(promise: nil)
        case .timeOut(let stage):
            metrics.timedOut(stage)
            write(
                status: "408 Request Timeout",
                error: APIError(
                    status: 408,
                    code: "request_timeout",
                    message: stage == .head
                        ? "the request's head did not arrive within REQUEST_HEADER_TIMEOUT_S"
                        : "the request's body did not arrive within REQUEST_BODY_TIMEOUT_S"
                )
            )
        case .closeMidAnswer(let stage):
            metrics.timedOut(stage)
            context.close(promise: nil)
        }
    }

    /// Writes a whole error answer on the raw socket and closes the connection.
    private func write(status: String, error: APIError) {
        guard let context = rawContext else { return }
        RawErrorAnswer.send(status: status, error: error, requestID: requestIDs.next(), on: context)
    }
}

/// An error answer in the JSON shape written straight to the socket, below the HTTP encoder,
/// for connections that no route will answer; the connection closes after it.
enum RawErrorAnswer {
    static func send(status: String, error: APIError, requestID: String, extraHeaders: String = "", on context: ChannelHandlerContext) {
        var json = JSONWriter(capacity: 160)
        json.beginObject()
        json.member("error", error.message)
        json.member("code", error.code)
        json.member("request_id", requestID)
        for field in error.fields {
            if case .double(let value) = field.value {
                json.key(field.name)
                json.number(value)
            }
        }
        json.endObject()
        let body = json.text
        var buffer = context.channel.allocator.buffer(capacity: 256 + body.utf8.count)
        buffer.writeString(
            "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\(extraHeaders)"
                + "X-Request-ID: \(requestID)\r\nTrace-Id: \(requestID)\r\nConnection: close\r\n\r\n\(body)"
        )
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in context.close(promise: nil) }
    }
}

/// First in a connection's pipeline: notes the first byte of each request, and writes raw answers.
final class ConnectionBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let guarded: ConnectionGuard

    init(_ guarded: ConnectionGuard) {
        self.guarded = guarded
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guarded.rawContext = context
        if context.channel.isActive { guarded.opened(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        guarded.opened(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guarded.bytesRead(context)
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        guarded.closed()
        context.fireChannelInactive()
    }
}

/// After the HTTP codec: notes heads, ends and answers, and answers heads that do not parse.
final class ConnectionPartsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let guarded: ConnectionGuard

    init(_ guarded: ConnectionGuard) {
        self.guarded = guarded
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guarded.partRead(unwrapInboundIn(data), context)
        context.fireChannelRead(data)
    }

    /// Whether the answer being written said `Connection: close`.
    private var closeAfterAnswer = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        guarded.partWritten(part, context)
        switch part {
        case .head(let head):
            if head.headerFields[.connection]?.lowercased() == "close" { closeAfterAnswer = true }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            // An answer that says `Connection: close` (a malformed or oversized request, whose
            // unread rest cannot be trusted or is not worth reading) ends the connection.
            guard closeAfterAnswer else {
                context.write(data, promise: promise)
                return
            }
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { _ in context.close(promise: nil) }
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A head that does not parse has no request, no route and no middleware to answer it:
        // answer here, in the JSON shape. A bad body goes on to its request's handler (a 400 there).
        if let error = error as? HTTPParserError, !guarded.insideRequest {
            guarded.refuse(error)
            return
        }
        context.fireErrorCaught(error)
    }
}
