import CortexCore
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The files a `rediss://` connection verifies its server with, and shows as its own
/// certificate when Redis asks for one (`tls-auth-clients`): PEM, all optional (without a CA,
/// the system's roots).
public struct RedisTLSFiles: Sendable, Equatable {
    public var ca: String?
    public var certificate: String?
    public var key: String?

    public init(ca: String? = nil, certificate: String? = nil, key: String? = nil) {
        self.ca = ca
        self.certificate = certificate
        self.key = key
    }

    /// Whether any file is given.
    public var isEmpty: Bool { ca == nil && certificate == nil && key == nil }
}

/// A small Redis client: one pipelined connection per event loop, opened on first use and again
/// after a failure.
///
/// A command goes out on the connection of the event loop its caller runs on (Cortex runs Swift
/// concurrency on NIO's loops), so a request, its Redis round trip and its reply stay on one
/// thread. Every command has a deadline (`timeout`), and so does connecting, so a Redis that is
/// down or slow costs a caller at most that long; the caller decides what to do instead (the
/// rate limiter falls back to its local state).
public final class RedisClient: Sendable {
    /// Where Redis is.
    public let host: String
    public let port: Int
    /// Deadline of each command, and of connecting.
    public let timeout: Duration
    /// Commands every new connection sends before any other: `AUTH`, `SELECT`.
    private let handshake: [[String]]
    /// TLS for `rediss://`, made once: a context reads the trust roots and certificates.
    private let tls: NIOSSLContext?
    private let group: any EventLoopGroup
    private struct Slot {
        /// The connection being opened by the first caller that needed it; later callers wait for it.
        var connecting: EventLoopFuture<RedisConnection>?
        /// The open connection.
        var open: RedisConnection?
    }
    /// One slot per event loop.
    private let slots = Mutex([ObjectIdentifier: Slot]())

    /// A client for `redis://[[user]:password@]host[:port][/database]`, or `rediss://` for TLS.
    ///
    /// With a password, each new connection authenticates first (`AUTH`, with the user for Redis
    /// 6 ACLs); with a database number other than 0 it selects it (`SELECT`). A refusal fails
    /// that connection with ``RedisError/handshake(_:)``, which the rate limiter reports as its
    /// reason for falling back. Over TLS (swift-nio-ssl) the server's certificate is checked
    /// against `tls.ca` (else the system's roots) and the host name; `tls.certificate` and
    /// `tls.key` are shown when Redis asks for a client certificate.
    ///
    /// - Throws: ``RedisError/invalidURL(_:)``; ``RedisError/tls(_:)`` for TLS files that cannot
    ///   be used, or given with a `redis://` URL.
    public init(url: String, timeout: Duration = .milliseconds(50), tls files: RedisTLSFiles = RedisTLSFiles()) throws {
        let location = try Self.location(of: url)
        if location.usesTLS {
            self.tls = try Self.context(files)
        } else {
            guard files.isEmpty else {
                throw RedisError.tls("REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE need a rediss:// REDIS_URL")
            }
            self.tls = nil
        }
        self.host = location.host
        self.port = location.port
        self.timeout = timeout
        self.handshake = location.handshake
        // The shared loops, a connection on each: a loop of Redis's own measured slower (46% of
        // the local limiter's requests/s, every decision paying two thread hops) and one connection
        // for all loops 62%; a connection per loop measured 77%.
        self.group = MultiThreadedEventLoopGroup.singleton
    }

    /// Sends a command and returns the reply; a Redis error reply (`-ERR ...`) is returned, not thrown.
    ///
    /// - Throws: ``RedisError/timeout`` or a connection error; the next call reconnects.
    public func send(_ command: [String]) async throws -> RESPValue {
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.any()
        let connection = try await current(on: loop)
        do {
            return try await connection.send(command)
        } catch {
            forget(connection, on: loop)
            throw error
        }
    }

    /// Closes every connection.
    public func close() async {
        let all = slots.withLock { slots in
            defer { slots = [:] }
            return Array(slots.values)
        }
        for slot in all {
            await slot.open?.close()
        }
    }

    private func current(on loop: any EventLoop) async throws -> RedisConnection {
        let id = ObjectIdentifier(loop)
        enum Next {
            case open(RedisConnection)
            case wait(EventLoopFuture<RedisConnection>)
            case connect(EventLoopPromise<RedisConnection>)
        }
        let next = slots.withLock { slots -> Next in
            var slot = slots[id] ?? Slot()
            defer { slots[id] = slot }
            if let open = slot.open, open.isActive { return .open(open) }
            slot.open = nil
            if let connecting = slot.connecting { return .wait(connecting) }
            let promise = loop.makePromise(of: RedisConnection.self)
            slot.connecting = promise.futureResult
            return .connect(promise)
        }
        switch next {
        case .open(let connection):
            return connection
        case .wait(let connecting):
            return try await connecting.get()
        case .connect(let promise):
            // This caller connects, in its own task; the others wait on the promise.
            let connecting = promise.futureResult
            do {
                let open = try await RedisConnection.connect(
                    host: host, port: port, timeout: timeout, handshake: handshake, tls: tls, loop: loop)
                let kept = slots.withLock { slots in
                    guard slots[id]?.connecting === connecting else { return false }
                    slots[id] = Slot(connecting: nil, open: open)
                    return true
                }
                guard kept else {
                    // Closed while connecting: the connection has no owner.
                    await open.close()
                    throw RedisError.connectionClosed
                }
                promise.succeed(open)
                return open
            } catch {
                slots.withLock { slots in
                    if slots[id]?.connecting === connecting { slots[id]?.connecting = nil }
                }
                promise.fail(error)
                throw error
            }
        }
    }

    /// What a Redis URL names: the host and port, whether it speaks TLS, and the commands a new connection
    /// starts with (`AUTH`, `SELECT`). Reads the URL only: no file, no connection.
    ///
    /// - Throws: ``RedisError/invalidURL(_:)``.
    public static func location(of url: String) throws -> (host: String, port: Int, usesTLS: Bool, handshake: [[String]]) {
        guard let components = URLComponents(string: url), components.scheme == "redis" || components.scheme == "rediss",
            let host = components.host, !host.isEmpty
        else { throw RedisError.invalidURL(url) }
        var handshake: [[String]] = []
        if let password = components.password {
            if let user = components.user, !user.isEmpty {
                handshake.append(["AUTH", user, password])
            } else {
                handshake.append(["AUTH", password])
            }
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        if !path.isEmpty {
            guard let database = Int(path), database >= 0 else { throw RedisError.invalidURL(url) }
            if database > 0 { handshake.append(["SELECT", String(database)]) }
        }
        return (host, components.port ?? 6379, components.scheme == "rediss", handshake)
    }

    /// The TLS context of `files`.
    private static func context(_ files: RedisTLSFiles) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        do {
            if let ca = files.ca { configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
            switch (files.certificate, files.key) {
            case (nil, nil): break
            case (let certificate?, let key?):
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            default:
                throw RedisError.tls("a client certificate needs its key: set both REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE")
            }
            return try NIOSSLContext(configuration: configuration)
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError.tls(
                "cannot use the TLS files (\([files.ca, files.certificate, files.key].compactMap { $0 }.joined(separator: ", "))): \(error)"
            )
        }
    }

    private func forget(_ failed: RedisConnection, on loop: any EventLoop) {
        slots.withLock { slots in
            if slots[ObjectIdentifier(loop)]?.open === failed { slots[ObjectIdentifier(loop)]?.open = nil }
        }
    }
}
