import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An OpenAI-compatible upstream on raw sockets, for answers a well-behaved server never sends:
/// a response framed by closing the connection (no `Content-Length`, no chunked encoding), or an
/// error that echoes the request's headers.
///
/// It serves one request per connection on a thread of its own: `GET /v1/models` lists
/// `fake-model`; any other request gets what `answer` returns for the request's text (head and
/// body), written whole, and then the connection is closed.
final class RawUpstream: Sendable {
    let port: Int
    private let listener: Int32
    private let requests = Mutex<[String]>([])
    /// Signalled when the accepting thread has ended, so `stop()` closes no descriptor it may still use.
    private let ended = DispatchSemaphore(value: 0)

    /// The requests received so far (head and body), in order.
    var received: [String] { requests.withLock { $0 } }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Connections accepted so far.
    var connections: Int { accepted.withLock { $0 } }
    private let accepted = Mutex(0)
    /// The kept-alive connections open now.
    private let kept = Mutex<Set<Int32>>([])

    /// Closes every kept-alive connection (as a provider restarting, or an idle timeout, would);
    /// their threads see the end and stop.
    func closeKeptConnections() {
        kept.withLock { connections in
            for connection in connections { _ = shutdown(connection, Int32(SHUT_RDWR)) }
        }
    }

    /// - Parameter keepsAlive: Whether a connection serves request after request (each on a
    ///   thread of its own) until the client closes it or an answer says `Connection: close`;
    ///   otherwise each connection gets one answer and is closed.
    init(keepsAlive: Bool = false, answer: @escaping @Sendable (String) -> String) throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var reuse: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listener = listener
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard bound, listen(listener, 64) == 0 else {
            _ = close(listener)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EADDRINUSE)
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let worker = Thread { [self] in
            defer { ended.signal() }
            while true {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { return }
                accepted.withLock { $0 += 1 }
                if keepsAlive {
                    kept.withLock { _ = $0.insert(connection) }
                    Thread { [self] in
                        while true {
                            let request = Self.readRequest(connection)
                            guard !request.isEmpty else { break }
                            self.requests.withLock { $0.append(request) }
                            let response = answer(request)
                            Self.write(response, to: connection)
                            if response.lowercased().contains("connection: close") { break }
                        }
                        // Out of the set before the descriptor is freed for reuse.
                        kept.withLock { _ = $0.remove(connection) }
                        _ = close(connection)
                    }.start()
                    continue
                }
                let request = Self.readRequest(connection)
                self.requests.withLock { $0.append(request) }
                let response =
                    request.hasPrefix("GET /v1/models")
                    ? Self.json(#"{"object":"list","data":[{"id":"fake-model","object":"model","owned_by":"fake"}]}"#)
                    : answer(request)
                Self.write(response, to: connection)
                _ = close(connection)
            }
        }
        worker.start()
    }

    /// Stops accepting, waits for the thread to end, then closes the listener (closed first, its
    /// number could be reused by another descriptor while the thread still calls `accept` on it).
    func stop() {
        _ = shutdown(listener, Int32(SHUT_RDWR))
        _ = ended.wait(timeout: .now() + 30)
        _ = close(listener)
    }

    /// A whole JSON answer with its length, closing the connection.
    static func json(_ body: String, status: String = "200 OK") -> String {
        "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }

    /// A server-sent event stream framed by the connection's close: the head says neither a
    /// length nor chunked encoding, so only the close ends the body.
    static func closeFramedStream(_ events: [String]) -> String {
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + events.map { "data: \($0)\n\n" }.joined()
    }

    /// One OpenAI chat chunk carrying `text` (and a finish reason, on the last).
    static func chunk(_ text: String, finishReason: String? = nil) -> String {
        let reason = finishReason.map { #""\#($0)""# } ?? "null"
        return
            #"{"id":"raw-1","object":"chat.completion.chunk","created":1700000000,"model":"fake-model","choices":[{"index":0,"delta":{"content":"\#(text)"},"finish_reason":\#(reason)}]}"#
    }

    /// The value of header `name` in a request's text.
    static func header(_ name: String, in request: String) -> String? {
        request.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
            .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
    }

    private static func readRequest(_ connection: Int32) -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while true {
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let length = header("Content-Length", in: String(text[..<end.lowerBound])).flatMap { Int($0) } ?? 0
                if text[end.upperBound...].utf8.count >= length { return text }
            }
            let count = recv(connection, &buffer, buffer.count, 0)
            if count <= 0 { return text }
            received += buffer[0..<count]
        }
    }

    private static func write(_ text: String, to connection: Int32) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return }
            offset += written
        }
    }
}
