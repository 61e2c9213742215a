public import Foundation

/// A `redis-server` of a test's own on a free loopback port, which the test may stop and start
/// again on the same port (to test what happens while Redis is down). `make test` installs it.
public final class RedisTestServer: @unchecked Sendable {
    /// `redis://127.0.0.1:PORT`.
    public let url: String
    public let port: Int
    private let directory: String
    private let password: String?
    private let tls: TLS?
    private var process: ChildProcess?

    /// TLS on the server's port (its only port then): PEM files, and whether clients must show a
    /// certificate the CA signed.
    public struct TLS: Sendable {
        public var certificate: String
        public var key: String
        public var ca: String
        public var clientsNeedCertificates: Bool

        public init(certificate: String, key: String, ca: String, clientsNeedCertificates: Bool) {
            self.certificate = certificate
            self.key = key
            self.ca = ca
            self.clientsNeedCertificates = clientsNeedCertificates
        }
    }

    /// Starts a server; with a `password`, clients must authenticate (`requirepass`); with `tls`,
    /// it speaks TLS only, and ``url`` is `rediss://localhost:PORT` (its certificate's name).
    public init(password: String? = nil, tls: TLS? = nil) throws {
        port = try LoopbackPort.free()
        self.password = password
        self.tls = tls
        url = tls == nil ? "redis://127.0.0.1:\(port)" : "rediss://localhost:\(port)"
        directory = NSTemporaryDirectory() + "cortex-redis-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    public func start() throws {
        guard let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first(where: FileManager.default.isExecutableFile)
        else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "redis-server not found; `make test` installs it"])
        }
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(null) }
        process = try ChildProcess(
            executable: binary,
            arguments: (tls.map { tls in
                ["--port", "0", "--tls-port", "\(port)", "--tls-cert-file", tls.certificate, "--tls-key-file", tls.key]
                    + ["--tls-ca-cert-file", tls.ca, "--tls-auth-clients", tls.clientsNeedCertificates ? "yes" : "no"]
            } ?? ["--port", "\(port)"])
                + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory]
                + (password.map { ["--requirepass", $0] } ?? []),
            environment: ProcessInfo.processInfo.environment,
            standardOutput: null,
            standardError: null
        )
        for _ in 0..<200 {
            if Self.accepts(port: port) { return }
            usleep(10_000)
        }
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "redis-server did not start on port \(port)"])
    }

    /// Stops the server (SIGKILL: as abrupt as a crash) and waits until it is gone.
    public func stop() {
        process?.kill()
        process = nil
    }

    private static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
