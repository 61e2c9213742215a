import CortexCore
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// One connection to Redis: commands are pipelined and answered in order.
///
/// Commands sent while the connection's event loop is busy go out together in one write, and
/// one timer per connection (not one per command) enforces every command's deadline. A
/// connection that fails or misses a deadline is closed, and ``RedisClient`` opens a new one for
/// the next command.
final class RedisConnection: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<RedisPipelineHandler>

    private init(channel: any Channel, handler: NIOLoopBound<RedisPipelineHandler>) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects within `timeout`, then sends the `handshake` commands (`AUTH`, `SELECT`).
    ///
    /// - Throws: ``RedisError/timeout`` when connecting takes longer (a busy machine or a Redis
    ///   that does not accept), ``RedisError/handshake(_:)`` when Redis refuses a handshake
    ///   command (a wrong password), another error when the connection is refused.
    static func connect(
        host: String, port: Int, timeout: Duration, handshake: [[String]] = [], tls: NIOSSLContext? = nil, loop: any EventLoop
    ) async throws -> RedisConnection {
        let connection: RedisConnection
        do {
            connection = try await open(host: host, port: port, timeout: timeout, tls: tls, loop: loop)
        } catch ChannelError.connectTimeout {
            throw RedisError.timeout
        }
        for command in handshake {
            let reply: RESPValue
            do {
                reply = try await connection.send(command)
            } catch {
                await connection.close()
                throw error
            }
            if case .error(let message) = reply {
                await connection.close()
                throw RedisError.handshake(message)
            }
        }
        return connection
    }

    private static func open(
        host: String, port: Int, timeout: Duration, tls: NIOSSLContext?, loop: any EventLoop
    ) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(timeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // SNI takes a name only; an address is checked against the certificate's addresses.
                        let name = IPAddress.isLiteral(host) ? nil : host
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: name))
                    }
                    try channel.pipeline.syncOperations.addHandler(RedisPipelineHandler(timeout: TimeAmount(timeout)))
                }
            }
            .connect(host: host, port: port)
            .get()
        return try await channel.eventLoop.submit {
            let handler = try channel.pipeline.syncOperations.handler(type: RedisPipelineHandler.self)
            return RedisConnection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }.get()
    }

    /// Whether the socket is still open.
    var isActive: Bool { channel.isActive }

    /// Sends one command and waits for its reply, at most the connection's timeout.
    func send(_ command: [String]) async throws -> RESPValue {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: RESPValue.self)
        if loop.inEventLoop {
            handler.value.send(command, promise: promise)
        } else {
            loop.execute { [handler] in handler.value.send(command, promise: promise) }
        }
        return try await promise.futureResult.get()
    }

    func close() async {
        try? await channel.close()
    }
}

/// Writes commands, matches replies to them first in first out, and enforces deadlines.
final class RedisPipelineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        let promise: EventLoopPromise<RESPValue>
        let deadline: NIODeadline
    }

    private let timeout: TimeAmount
    private var context: ChannelHandlerContext?
    /// Sent commands, oldest first.
    private var pending = CircularBuffer<Pending>(initialCapacity: 64)
    /// Commands encoded since the last flush.
    private var outbound = ByteBuffer()
    private var flushScheduled = false
    private var deadlineTimer: Scheduled<Void>?
    private var inbound = ByteBuffer()

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbound = context.channel.allocator.buffer(capacity: 1024)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(RedisError.connectionClosed)
        self.context = nil
    }

    /// Queues `command`; it is written with every other command queued in the same loop tick.
    func send(_ command: [String], promise: EventLoopPromise<RESPValue>) {
        guard let context, context.channel.isActive else {
            promise.fail(RedisError.connectionClosed)
            return
        }
        pending.append(Pending(promise: promise, deadline: .now() + timeout))
        RESP.encode(command, into: &outbound)
        if deadlineTimer == nil { armDeadline(context: context) }
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute { self.flush() }
    }

    private func flush() {
        flushScheduled = false
        guard let context, outbound.readableBytes > 0 else { return }
        let bytes = outbound
        outbound = context.channel.allocator.buffer(capacity: max(1024, bytes.readableBytes))
        context.writeAndFlush(wrapOutboundOut(bytes)).assumeIsolated().whenFailure { error in
            self.fail(error, context: context)
        }
    }

    /// One timer for the whole pipeline: it fires at the oldest command's deadline.
    private func armDeadline(context: ChannelHandlerContext) {
        guard let oldest = pending.first else {
            deadlineTimer = nil
            return
        }
        deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: oldest.deadline) {
            self.deadlineTimer = nil
            guard let oldest = self.pending.first else { return }
            if oldest.deadline <= .now() {
                // Replies would now arrive out of step with their commands: this connection is done.
                self.fail(RedisError.timeout, context: context)
            } else {
                self.armDeadline(context: context)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        inbound.writeBuffer(&incoming)
        do {
            while let reply = try RESP.decode(&inbound) {
                guard let next = pending.popFirst() else {
                    throw RESP.ProtocolError(description: "a reply arrived for no command")
                }
                next.promise.succeed(reply)
            }
            inbound.discardReadBytes()
        } catch {
            fail(error, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        deadlineTimer?.cancel()
        deadlineTimer = nil
        while let next = pending.popFirst() { next.promise.fail(error) }
    }
}

/// Why a Redis command failed without a reply.
public enum RedisError: Error, Equatable, CustomStringConvertible {
    /// No reply within the deadline.
    case timeout
    /// The connection closed before the reply.
    case connectionClosed
    /// The URL is not `redis[s]://[[user]:password@]host[:port][/database]`.
    case invalidURL(String)
    /// Redis refused a command a new connection starts with (`AUTH`, `SELECT`): its error reply.
    case handshake(String)
    /// The TLS settings cannot be used (a file that cannot be read, a certificate without its
    /// key), or TLS files were given for a `redis://` URL.
    case tls(String)

    public var description: String {
        switch self {
        case .timeout: "Redis did not answer in time"
        case .connectionClosed: "the Redis connection closed"
        case .invalidURL(let url):
            "REDIS_URL must look like redis://[[user]:password@]host[:port][/database] (rediss:// for TLS), e.g. redis://:secret@redis:6379/0 (got \(RedactedURL.redacting(url)))"
        case .handshake(let message): "Redis refused the connection's set-up: \(message)"
        case .tls(let reason): "Redis TLS: \(reason)"
        }
    }

}
