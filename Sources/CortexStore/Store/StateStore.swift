public import CoreMetrics
public import Foundation
public import Logging
import Synchronization

/// Everything Cortex keeps outside the process: tenants, keys and the credits ledger, on the
/// embedded SQLite file or on PostgreSQL, with the same behaviour on both.
///
/// The SQL is written once (see ``SQLDatabase``); what differs per engine (how to connect,
/// migrate, probe, back up) lives in a ``StorageEngine``.
public final class StateStore: Sendable {
    /// The credits ledger: the database's own, or with credit leases after ``useCreditLeases(_:)``.
    public var ledger: any Ledger { current.withLock { $0 } }
    private let current: Mutex<any Ledger>
    /// The ledger in SQL, under any leasing.
    let sqlLedger: SQLLedger
    /// Where the data lives, for logs: a file path, or PostgreSQL's host, port and database (never a password).
    public var location: String { engine.location }
    /// The filesystem that holds the data, for the free-disk check; `nil` when the database is remote.
    public var localPath: String? { engine.localPath }
    /// Autocommit statements (reads and single-statement writes).
    let database: any SQLDatabase
    private let engine: any StorageEngine
    /// The ledger's writer, which ``run()`` runs.
    private let committer: GroupCommitter

    init(engine: any StorageEngine, metrics: any MetricsFactory) {
        self.engine = engine
        self.database = engine.reader
        self.committer = GroupCommitter(
            database: engine.writer, executor: engine.writerExecutor, metrics: metrics, batchStatement: engine.batchStatement)
        self.sqlLedger = SQLLedger(writer: committer, reader: engine.reader)
        self.current = Mutex(sqlLedger)
    }

    /// Makes ``ledger`` hold requests on credit leases (see ``LeasingLedger``) from now on, and
    /// returns it: whoever serves requests runs its ``LeasingLedger/keep()`` and, after the last
    /// request, its ``LeasingLedger/returnAll()``. Call it before handing ``ledger`` out.
    /// How long a finished request's `Idempotency-Key` is remembered (`IDEMPOTENCY_TTL_S`): past
    /// it, a request with the same key is a new one.
    public func setIdempotencyTTL(_ ttl: Duration) {
        sqlLedger.setIdempotencyTTL(ttl)
    }

    public func useCreditLeases(_ policy: CreditLeasePolicy) -> LeasingLedger {
        let leasing = LeasingLedger(base: sqlLedger, policy: policy)
        current.withLock { $0 = leasing }
        return leasing
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

    /// Opens the SQLite file at `path` (see ``openSQLite(path:probeTimeoutMilliseconds:metrics:logger:)``), runs `body`, closes it.
    public static func withSQLite<Value>(
        path: String,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        logger: Logger,
        _ body: (StateStore) async throws -> Value
    ) async throws -> Value {
        try await running(try await openSQLite(path: path, metrics: metrics, logger: logger), body)
    }

    /// Connects to PostgreSQL at `url` (`postgres://user:password@host:port/database?sslmode=...`),
    /// applies pending migrations (replicas starting together migrate once), runs `body`, and
    /// closes the pool. The pool runs in a child task for exactly as long as `body` does.
    public static func withPostgres<Value>(
        url: String,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        logger: Logger,
        _ body: (StateStore) async throws -> Value
    ) async throws -> Value {
        let store = try connectPostgres(url: url, metrics: metrics, logger: logger)
        return try await running(store) { store in
            try await store.migrate()
            return try await body(store)
        }
    }

    /// Runs `body` while `store` runs (``run()``) in a child task, then closes the store, which ends it.
    private static func running<Value>(_ store: StateStore, _ body: (StateStore) async throws -> Value) async throws -> Value {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            do {
                let value = try await body(store)
                await store.close()
                return value
            } catch {
                await store.close()
                throw error
            }
        }
    }

    /// A PostgreSQL store that is not running yet: run ``run()`` alongside (a child task, or a
    /// service), then ``migrate()``. ``withPostgres(url:metrics:logger:_:)`` does both.
    public static func connectPostgres(
        url: String,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        logger: Logger
    ) throws -> StateStore {
        StateStore(engine: try PostgresEngine.connect(url: url, logger: logger), metrics: metrics)
    }

    /// Runs what the store needs while it is open, until ``close()`` (or cancellation): the
    /// ledger's writer, which every ledger write waits for, and PostgreSQL's connection pool.
    /// ``withSQLite(path:metrics:logger:_:)`` and ``withPostgres(url:metrics:logger:_:)`` run it
    /// for their scope; whoever opens a store otherwise runs it alongside.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.engine.run() }
            await committer.run()
            group.cancelAll()
        }
    }

    /// Applies pending migrations (PostgreSQL; SQLite migrates when it opens).
    public func migrate() async throws {
        try await engine.migrate()
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

    /// Refuses new ledger writes, waits for the queued ones to commit and the writer to stop, then
    /// closes the connections (and so ends ``run()``).
    public func close() async {
        await committer.close()
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
    /// How the engine runs a batch's plain ledger writes as one statement, if it can.
    var batchStatement: GroupCommitter.BatchStatement? { get }
    func probeWrite() async throws
    func integrityProblems() async throws -> [String]
    func backup(to destination: String) async throws
    func close() async
    func run() async
    func migrate() async throws
}

extension StorageEngine {
    var batchStatement: GroupCommitter.BatchStatement? { nil }
    func run() async {}
    func migrate() async throws {}
}
