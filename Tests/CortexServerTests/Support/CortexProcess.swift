import CortexTestSupport
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A real `cortex` process on a loopback port, for behaviour only a process shows:
/// signals, exit codes, start-up output.
final class CortexProcess: Sendable {
    enum Failure: Error, CustomStringConvertible {
        case binaryMissing(String)
        case didNotStart(String)
        var description: String {
            switch self {
            case .binaryMissing(let path): "no cortex binary at \(path); run `swift build` first (or set CORTEX_BINARY)"
            case .didNotStart(let output): "cortex did not start; output:\n\(output)"
            }
        }
    }

    /// The built executable: `$CORTEX_BINARY` or `.build/debug/cortex`.
    static var binary: String {
        ProcessInfo.processInfo.environment["CORTEX_BINARY"] ?? Repository.path(".build/debug/cortex")
    }

    let process: ChildProcess
    /// The files the child's standard output and error go to.
    private let outputPath: String
    private let errorPath: String

    /// Standard output so far (a character cut by a write in progress reads as a replacement).
    var stdout: String { Self.read(outputPath) }
    /// Standard error so far.
    var stderr: String { Self.read(errorPath) }

    private static func read(_ path: String) -> String {
        String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
    }

    /// Starts `cortex` with arguments and extra environment; does not wait for it to listen.
    ///
    /// The child writes to files, read on demand: not pipes with Foundation's readability
    /// handlers, whose dispatch sources crashed the test process (in libdispatch's event loop)
    /// when a pipe was released while its source was still registered.
    ///
    /// - Parameters:
    ///   - user: Run as this user id (through `setpriv`) instead of the test's own.
    ///   - binary: The executable to run; `Self.binary` unless a test made a copy.
    ///   - workingDirectory: Where relative paths resolve; the repository by default.
    init(
        arguments: [String],
        environment: [String: String],
        user: UInt32? = nil,
        binary: String = CortexProcess.binary,
        workingDirectory: String = Repository.root.path
    ) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw Failure.binaryMissing(binary) }
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        let base = NSTemporaryDirectory() + "cortex-process-" + UUID().uuidString
        outputPath = base + ".out"
        errorPath = base + ".err"
        FileManager.default.createFile(atPath: outputPath, contents: nil)
        FileManager.default.createFile(atPath: errorPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
        defer {
            // The child has its own copies.
            try? out.close()
            try? err.close()
        }
        process = try ChildProcess(
            executable: user == nil ? binary : "/usr/bin/setpriv",
            arguments: user.map { ["--reuid=\($0)", "--regid=\($0)", "--clear-groups", binary] + arguments } ?? arguments,
            environment: env,
            directory: workingDirectory,
            standardOutput: out.fileDescriptor,
            standardError: err.fileDescriptor
        )
    }

    deinit {
        process.kill()
        try? FileManager.default.removeItem(atPath: outputPath)
        try? FileManager.default.removeItem(atPath: errorPath)
    }

    /// Runs a short `cortex` command to completion and returns its status and whole output.
    ///
    /// Output goes to files, not pipes, so nothing written just before the exit can be missed
    /// (a pipe's last reads may arrive after the exit is seen, on a busy machine).
    static func run(_ arguments: [String], environment: [String: String]) async throws -> (status: Int32?, stdout: String, stderr: String) {
        let binary = Self.binary
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw Failure.binaryMissing(binary) }
        return try await runToCompletion(binary, arguments, environment: environment, timeout: .seconds(60))
    }

    /// Runs any program from the repository root to completion (killed after `timeout`); `status`
    /// is `nil` when it had to be killed.
    static func runToCompletion(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        timeout: Duration
    ) async throws -> (status: Int32?, stdout: String, stderr: String) {
        let base = NSTemporaryDirectory() + "cortex-cli-" + UUID().uuidString
        let (outPath, errPath) = (base + ".out", base + ".err")
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        let process = try ChildProcess(
            executable: executable,
            arguments: arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new },
            directory: Repository.root.path,
            standardOutput: out.fileDescriptor,
            standardError: err.fileDescriptor
        )
        try? out.close()
        try? err.close()
        let status = try await process.waitForExit(timeout: timeout)
        if status == nil { process.kill() }
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return (status, read(outPath), read(errPath))
    }

    /// ``runToCompletion(_:_:environment:timeout:)`` with standard output and error as one text,
    /// for tools whose verdict is their status and whose message may go to either.
    static func output(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(300)
    ) async throws -> (status: Int32?, output: String) {
        let (status, stdout, stderr) = try await runToCompletion(executable, arguments, environment: environment, timeout: timeout)
        return (status, stdout + stderr)
    }

    /// Starts `cortex serve` on a free loopback port and waits until it listens.
    static func serve(
        environment: [String: String],
        directory: TemporaryDirectory,
        user: UInt32? = nil,
        binary: String = CortexProcess.binary,
        workingDirectory: String = Repository.root.path
    ) async throws -> (CortexProcess, port: Int) {
        var env = [
            "HOST": "127.0.0.1",
            "PORT": "0",
            "DATABASE_URL": "sqlite:" + directory.file("cortex.db"),
            "MIN_FREE_DISK_MB": "1",
            "LOG_LEVEL": "debug",
        ]
        env.merge(environment) { _, new in new }
        let cortex = try CortexProcess(
            arguments: ["serve"],
            environment: env,
            user: user,
            binary: binary,
            workingDirectory: workingDirectory
        )
        for _ in 0..<600 {
            if let port = cortex.listeningPort { return (cortex, port) }
            if !cortex.process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        cortex.terminate()
        throw Failure.didNotStart(cortex.stdout + cortex.stderr)
    }

    /// Waits (up to 30 s: a bound on a hang, not on speed) until the server on `port` reports
    /// `llm.path` `primary`: its warm-up found the primary's model.
    static func waitForPrimaryLLM(port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while try RawHTTPConnection.request(port: port, path: "/api/status/summary")?.body.contains(#""path":"primary""#) != true {
            guard ContinuousClock.now < deadline else { throw CortexProcess.Failure.didNotStart("llm.path never became primary") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The port from the `SERVER_STARTED` log line, once it is printed.
    var listeningPort: Int? {
        for line in stdout.split(separator: "\n") where line.contains("\"SERVER_STARTED\"") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            return object["port"] as? Int
        }
        return nil
    }

    /// JSON log lines parsed, skipping anything that is not JSON.
    var logEvents: [[String: Any]] {
        stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Waits (up to 5 s) until the server logged `REQ_START` for a POST: it has the request, so a
    /// signal sent now finds it in flight. A fixed sleep is not enough on a busy machine.
    func waitForRequestStart() async throws {
        for _ in 0..<250 {
            if logEvents.contains(where: { $0["event"] as? String == "REQ_START" && $0["method"] as? String == "POST" }) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func signal(_ number: Int32) {
        process.signal(number)
    }

    /// Waits for exit (up to `timeout`) and returns the exit status, or `nil` if it is still running.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32? {
        try await process.waitForExit(timeout: timeout)
    }

    /// Kills the process if it still runs.
    func terminate() {
        process.kill()
    }
}

/// A minimal blocking HTTP/1.1 client over a POSIX socket, so a test can hold a request half-sent.
final class RawHTTPConnection {
    let socket: Int32
    /// Whether `close()` ran: a descriptor closed twice may close another test's socket that got
    /// the same number meanwhile (the suites run in parallel), which NIO then finds gone.
    private var isClosed = false

    init(port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            _ = Glibc.close(socket)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECONNREFUSED)
        }
    }

    func send(_ text: String) {
        send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0, errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }

    /// Reads one response with a Content-Length body; returns the status and body.
    func readResponse() -> (status: Int, body: String)? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let text = String(decoding: received, as: UTF8.self)
            if let headerEnd = text.range(of: "\r\n\r\n") {
                let head = text[..<headerEnd.lowerBound]
                let length =
                    head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                let body = String(text[headerEnd.upperBound...])
                if body.utf8.count >= length {
                    let status = Int(head.split(separator: " ")[1]) ?? 0
                    return (status, body)
                }
            }
            let count = recv(socket, &buffer, buffer.count, 0)
            // A signal (a child process of another test exiting) interrupts the wait: wait again.
            if count < 0, errno == EINTR { continue }
            if count <= 0 { return nil }
            received += buffer[0..<count]
        }
    }

    /// Everything the server sends until it closes the connection.
    func readToEnd() -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { return String(decoding: received, as: UTF8.self) }
            received += buffer[0..<count]
        }
    }

    /// Closes the socket, once: later calls do nothing.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        _ = Glibc.close(socket)
    }

    /// The documented demo key, which a loopback server accepts by default.
    static let demoKey = "demo-api-key-123"

    /// ``request(port:method:path:body:demoKey:headers:host:)`` on a thread of its own, for a
    /// request the server answers only after something in this test process runs (a fake
    /// upstream): the blocking read would otherwise hold one of the few threads that fake needs.
    static func requestOnThread(
        port: Int, method: String = "GET", path: String, body: String = "", demoKey: String = RawHTTPConnection.demoKey,
        headers: [(String, String)] = []
    ) async throws -> (status: Int, body: String)? {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result { try request(port: port, method: method, path: path, body: body, demoKey: demoKey, headers: headers) })
            }
            .start()
        }
    }

    /// One request on a fresh connection, with the demo key.
    static func request(
        port: Int,
        method: String = "GET",
        path: String,
        body: String = "",
        demoKey: String = RawHTTPConnection.demoKey,
        headers: [(String, String)] = [],
        host: String = "127.0.0.1"
    ) throws -> (status: Int, body: String)? {
        try request(port: port, method: method, path: path, body: Array(body.utf8), demoKey: demoKey, headers: headers, host: host)
    }

    /// One request with a body of any bytes, on a fresh connection, with the demo key (none when `demoKey` is empty).
    static func request(
        port: Int,
        method: String,
        path: String,
        body: [UInt8],
        demoKey: String = RawHTTPConnection.demoKey,
        headers: [(String, String)] = [],
        host: String = "127.0.0.1"
    ) throws -> (status: Int, body: String)? {
        let connection = try RawHTTPConnection(port: port)
        defer { connection.close() }
        let extra = ((demoKey.isEmpty ? [] : [("X-API-Key", demoKey)]) + headers).map { "\($0.0): \($0.1)\r\n" }.joined()
        connection.send(
            Array(
                "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\n\(extra)Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
                    .utf8) + body
        )
        return connection.readResponse()
    }
}
