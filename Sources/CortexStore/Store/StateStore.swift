public import CoreMetrics
public import Foundation
public import Logging

/// Everything Cortex keeps outside the process: tenants, keys and the credits ledger, on the
/// embedded SQLite file or on PostgreSQL, with the same behaviour on both.
///
/// The SQL is written once (see ``SQLDatabase``); what differs per engine (how to connect,
/// migrate, probe, back up) lives in a ``StorageEngine``.
public final class StateStore: Sendable {
    /// The credits ledger.
    public let ledger: any Ledger
    /// Where the data lives, for logs: a file path, or PostgreSQL's host, port and database (never a password).
    public var location: String { engine.location }
    /// The filesystem that holds the data, for the free-disk check; `nil` when the database is remote.
    public var localPath: String? { engine.localPath }
    /// Autocommit statements (reads and single-statement writes).
    let database: any SQLDatabase
    private let engine: any StorageEngine

    init(engine: any StorageEngine, metrics: any MetricsFactory) {
        self.engine = engine
        self.database = engine.reader
        self.ledger = SQLLedger(
            writer: GroupCommitter(database: engine.writer, executor: engine.writerExecutor, metrics: metrics),
            reader: engine.reader
        )
    }

    /// Opens (creating if needed) the SQLite file at `path` and applies pending migrations.
    ///
    /// - Parameters:
    ///   - path: A file path, relative to the working directory or absolute; parent folders are created.
    ///   - probeTimeoutMilliseconds: How long the readiness probe waits for a lock.
    ///   - metrics: Where the ledger records `ledger_batch_size` and `ledger_commit_seconds`.
    ///   - logger: Where migrations are logged.
    public static func openSQLite(
        path: String,
        probeTimeoutMilliseconds: Int = 1000,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        logger: Logger
    ) async throws -> StateStore {
        let engine = try await SQLiteEngine.open(path: path, probeTimeoutMilliseconds: probeTimeoutMilliseconds, logger: logger)
        return StateStore(engine: engine, metrics: metrics)
    }

    /// Connects to PostgreSQL at `url` (`postgres://user:password@host:port/database?sslmode=...`)
    /// and applies pending migrations; replicas starting together migrate once.
    public static func openPostgres(
        url: String,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        logger: Logger
    ) async throws -> StateStore {
        let engine = try await PostgresEngine.open(url: url, logger: logger)
        return StateStore(engine: engine, metrics: metrics)
    }

    /// Performs a real write to prove the database accepts writes (the readiness check).
    public func probeWrite() async throws {
        try await engine.probeWrite()
    }

    /// Checks the database and returns every problem found; empty means healthy.
    ///
    /// The engine's own checks (SQLite's integrity and foreign keys), then the ledger's invariants
    /// (see ``Ledger/verify(at:slack:)``).
    public func verify(at time: Date = Date(), holdSlack: Duration = .seconds(60)) async throws -> [String] {
        try await engine.integrityProblems() + ledger.verify(at: time, slack: holdSlack)
    }

    /// Writes a consistent copy of the database to `destination` while the server keeps running.
    public func backup(to destination: String) async throws {
        try await engine.backup(to: destination)
    }

    /// The highest applied schema version.
    public func schemaVersion() async throws -> Int {
        try await SQLMigrator.currentVersion(of: database)
    }

    /// Closes the connections.
    public func close() async {
        await engine.close()
    }
}

/// A failure Cortex detects itself (an unwritable file, an existing backup target, a bad URL),
/// as opposed to one the database reports.
public struct StoreFailure: Error, CustomStringConvertible {
    /// What was found.
    public var reason: String
    public var description: String { reason }

    /// Creates the failure.
    public init(reason: String) {
        self.reason = reason
    }
}

/// What differs between SQLite and PostgreSQL.
protocol StorageEngine: Sendable {
    /// For logs; never a password.
    var location: String { get }
    /// The local file, if any.
    var localPath: String? { get }
    /// Autocommit statements.
    var reader: any SQLDatabase { get }
    /// Where the ledger's shared transactions run; used by one writer at a time.
    var writer: any SQLDatabase { get }
    /// The executor the writer must run on, if it has one.
    var writerExecutor: (any TaskExecutor)? { get }
    func probeWrite() async throws
    func integrityProblems() async throws -> [String]
    func backup(to destination: String) async throws
    func close() async
}
