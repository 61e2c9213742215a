import Foundation
import Logging
import NIOPosix
import NIOSSL
import PostgresNIO

/// PostgreSQL for several replicas: a connection pool, migrations under an advisory lock.
///
/// Every replica's ledger writes lock the tenant's row (`UPDATE tenants ... WHERE balance >= price`),
/// so concurrent holds from different processes queue on it and can never overspend.
final class PostgresEngine: StorageEngine {
    let location: String
    var localPath: String? { nil }
    let reader: any SQLDatabase
    let writer: any SQLDatabase
    /// The ledger's writer runs on the loop that owns the pool's sockets.
    var writerExecutor: (any TaskExecutor)? { Self.writerExecutor }
    private static let writerExecutor = EventLoopExecutor(loop: eventLoop.next())
    /// A batch's holds, settlements and releases in one statement.
    var batchStatement: GroupCommitter.BatchStatement? {
        GroupCommitter.BatchStatement(isOwnTransaction: true) { writes, durable, database in
            try await PostgresLedgerBatch.run(writes, durable: durable, in: database)
        }
    }
    private let client: PostgresClient
    private let writerClient: PostgresClient
    private let logger: Logger

    private init(location: String, client: PostgresClient, writerClient: PostgresClient, logger: Logger) {
        self.location = location
        self.client = client
        self.writerClient = writerClient
        self.logger = logger
        self.reader = PostgresDatabase(client: client, logger: logger)
        self.writer = PostgresDatabase(client: writerClient, logger: logger)
    }

    /// One thread for every PostgreSQL connection of the process.
    private static let eventLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// How long start-up waits for PostgreSQL before giving up with a clear error.
    static let connectTimeout: Duration = .seconds(30)
    /// How long the readiness probe's write may take.
    static let probeTimeout: Duration = .seconds(2)

    /// A pool for `url`; nothing connects until ``run()`` runs.
    static func connect(url: String, logger: Logger) throws -> PostgresEngine {
        let target = try PostgresURL(url)
        var configuration = PostgresClient.Configuration(
            host: target.host,
            port: target.port,
            username: target.user,
            password: target.password,
            database: target.database,
            tls: target.tls
        )
        configuration.options.maximumConnections = 20
        configuration.options.connectTimeout = .seconds(5)
        // The pool's sockets get an event loop of their own, where the ledger's writer also runs:
        // its round trips neither queue behind HTTP work nor hop threads.
        let client = PostgresClient(configuration: configuration, eventLoopGroup: eventLoop, backgroundLogger: logger)
        // The ledger's writer has connections of its own, where only its statements run:
        // - PostgreSQL always uses the generic plan of a prepared statement: the batch statement
        //   (``PostgresLedgerBatch``) costs more to plan than to run, and with arrays of a few
        //   writes PostgreSQL's own choice would be to plan it afresh every time;
        // - no sequential scans: every row a ledger write touches is found by its key, and a
        //   plan made while the tables were small (at start-up) must not scan them once they
        //   are large, or scan the dead rows that open holds leave between vacuums.
        var writerConfiguration = configuration
        writerConfiguration.options.maximumConnections = 2
        writerConfiguration.options.additionalStartupParameters = [
            ("plan_cache_mode", "force_generic_plan"), ("enable_seqscan", "off"),
        ]
        let writerClient = PostgresClient(configuration: writerConfiguration, eventLoopGroup: eventLoop, backgroundLogger: logger)
        return PostgresEngine(location: target.redacted, client: client, writerClient: writerClient, logger: logger)
    }

    /// Runs the pools until the task is cancelled; queries wait for them.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            group.addTask { await self.writerClient.run() }
        }
    }

    /// Applies pending migrations under an advisory lock; gives up after ``connectTimeout`` without PostgreSQL.
    func migrate() async throws {
        let (writer, logger, location) = (self.writer, self.logger, self.location)
        try await withDeadline(Self.connectTimeout, what: "reaching PostgreSQL at \(location)") {
            try await SQLMigrator(
                database: writer,
                migrations: PostgresMigrations.all,
                lock: PostgresMigrations.lock,
                logger: logger
            ).migrate()
        }
    }

    func probeWrite() async throws {
        try await withDeadline(Self.probeTimeout, what: "the write probe") {
            _ = try await self.reader.query(
                """
                INSERT INTO readiness_probe (id, checked_at) VALUES (1, $1)
                ON CONFLICT (id) DO UPDATE SET checked_at = EXCLUDED.checked_at
                """,
                [.text(Date().ISO8601Format())]
            )
        }
    }

    /// PostgreSQL enforces its own constraints; there is no file to check.
    func integrityProblems() async throws -> [String] {
        []
    }

    func backup(to destination: String) async throws {
        throw StoreFailure(
            reason: "cortex db backup copies the embedded SQLite file; for PostgreSQL use pg_dump (pg_dump --format=custom \(location))"
        )
    }

    /// The pool stops when the task running ``run()`` is cancelled.
    func close() async {}
}

/// `postgres://user:password@host:port/database?sslmode=disable|prefer|require`.
struct PostgresURL {
    var host: String
    var port: Int
    var user: String
    var password: String?
    var database: String
    var tls: PostgresClient.Configuration.TLS

    /// The URL without its password, for logs.
    var redacted: String { "postgres://\(user)@\(host):\(port)/\(database)" }

    init(_ text: String) throws {
        guard let components = URLComponents(string: text), ["postgres", "postgresql"].contains(components.scheme ?? ""),
            let host = components.host, !host.isEmpty
        else {
            throw StoreFailure(reason: "DATABASE_URL must look like postgres://user:password@host:5432/database")
        }
        self.host = host
        self.port = components.port ?? 5432
        self.user = components.user ?? "postgres"
        self.password = components.password
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.database = path.isEmpty ? self.user : path
        switch components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer" {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
        case let other: throw StoreFailure(reason: "sslmode '\(other)' is not one of disable, prefer, require")
        }
    }
}

/// Runs `operation`, failing with a ``StoreFailure`` if it takes longer than `limit`.
func withDeadline<T: Sendable>(_ limit: Duration, what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw StoreFailure(reason: "\(what) took longer than \(limit)")
        }
        return value
    }
}
