import Foundation
import NIOCore
import NIOPosix

/// One connection to Redis: commands are pipelined and answered in order.
///
/// Every command has a deadline; a connection that fails or times out is closed, and
/// ``RedisClient`` opens a new one for the next command.
final class RedisConnection: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<RedisReplyHandler>

    private init(channel: any Channel, handler: NIOLoopBound<RedisReplyHandler>) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects within `timeout`.
    static func connect(host: String, port: Int, timeout: Duration, group: any EventLoopGroup) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(
                .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
            )
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RedisReplyHandler())
                }
            }
            .connect(host: host, port: port)
            .get()
        return try await channel.eventLoop.submit {
            let handler = try channel.pipeline.syncOperations.handler(type: RedisReplyHandler.self)
            return RedisConnection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }.get()
    }

    /// Whether the socket is still open.
    var isActive: Bool { channel.isActive }

    /// Sends one command and waits for its reply, at most `timeout`.
    func send(_ command: [String], timeout: Duration) async throws -> RESPValue {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: RESPValue.self)
        let deadline = loop.scheduleTask(
            in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        ) {
            promise.fail(RedisError.timeout)
        }
        loop.execute { [handler, channel] in
            handler.value.enqueue(promise)
            var buffer = channel.allocator.buffer(capacity: 64)
            RESP.encode(command, into: &buffer)
            channel.writeAndFlush(buffer).whenFailure { promise.fail($0) }
        }
        do {
            let reply = try await promise.futureResult.get()
            deadline.cancel()
            return reply
        } catch {
            deadline.cancel()
            // Replies may now arrive out of step with their commands: this connection is done.
            channel.close(promise: nil)
            throw error
        }
    }

    func close() async {
        try? await channel.close()
    }
}

/// Matches replies to the commands sent, first in first out.
final class RedisReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var pending: [EventLoopPromise<RESPValue>] = []
    private var buffer = ByteBuffer()

    func enqueue(_ promise: EventLoopPromise<RESPValue>) {
        pending.append(promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        do {
            while let reply = try RESP.decode(&buffer) {
                guard !pending.isEmpty else {
                    throw RESP.ProtocolError(description: "a reply arrived for no command")
                }
                pending.removeFirst().succeed(reply)
            }
            buffer.discardReadBytes()
        } catch {
            failAll(error)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        let waiting = pending
        pending.removeAll()
        for promise in waiting { promise.fail(error) }
    }
}

/// Why a Redis command failed without a reply.
public enum RedisError: Error, Equatable, CustomStringConvertible {
    /// No reply within the deadline.
    case timeout
    /// The connection closed before the reply.
    case connectionClosed
    /// The URL is not `redis://host:port`.
    case invalidURL(String)

    public var description: String {
        switch self {
        case .timeout: "Redis did not answer in time"
        case .connectionClosed: "the Redis connection closed"
        case .invalidURL(let url): "REDIS_URL must look like redis://host:6379 (got \(url))"
        }
    }
}
