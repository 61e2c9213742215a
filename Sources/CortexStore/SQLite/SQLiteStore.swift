public import CoreMetrics
public import Foundation
public import Logging
import NIOPosix
import SQLiteNIO

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded SQLite database: one file in WAL mode with versioned migrations.
///
/// Writes go through one connection. The readiness probe opens a fresh connection each time
/// with a short busy timeout, so a database that became locked, read-only, moved or
/// unreachable fails the probe quickly instead of hanging it or passing on a stale handle.
public final class SQLiteStore: Sendable {
    /// The absolute path of the database file.
    public let path: String
    /// The credits ledger in this database.
    public let ledger: any Ledger
    private let connection: SQLiteConnection
    private let ledgerConnection: SQLiteConnection
    private let probeTimeoutMilliseconds: Int
    private let logger: Logger

    private init(
        path: String,
        connection: SQLiteConnection,
        ledgerConnection: SQLiteConnection,
        probeTimeoutMilliseconds: Int,
        metrics: any MetricsFactory,
        logger: Logger
    ) {
        self.path = path
        self.connection = connection
        self.ledgerConnection = ledgerConnection
        self.ledger = SQLLedger(
            writer: GroupCommitter(database: SQLiteDatabase(connection: ledgerConnection), metrics: metrics),
            reader: SQLiteDatabase(connection: connection)
        )
        self.probeTimeoutMilliseconds = max(probeTimeoutMilliseconds, 1)
        self.logger = logger
    }

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// - Parameters:
    ///   - path: A file path, relative to the working directory or absolute; parent folders are created.
    ///   - probeTimeoutMilliseconds: How long the readiness probe waits for a lock.
    ///   - metrics: Where the ledger records `ledger_batch_size` and `ledger_commit_seconds`.
    ///   - logger: Where migrations are logged.
    public static func open(
        path: String,
        probeTimeoutMilliseconds: Int = 1000,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        logger: Logger
    ) async throws -> SQLiteStore {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        try FileManager.default.createDirectory(
            atPath: (absolute as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        let connection = try await openConnection(absolute, logger: logger)
        do {
            _ = try await connection.query("PRAGMA journal_mode = WAL")
            try await SQLiteMigrator(connection: connection, logger: logger).migrate(SQLiteMigrations.all)
            // The ledger writes on a connection of its own: its shared transactions stay open
            // across several statements, which must not pick up other queries.
            let ledgerConnection = try await openConnection(absolute, logger: logger)
            return SQLiteStore(
                path: absolute,
                connection: connection,
                ledgerConnection: ledgerConnection,
                probeTimeoutMilliseconds: probeTimeoutMilliseconds,
                metrics: metrics,
                logger: logger
            )
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// A connection with Cortex's settings: every commit synced to disk, foreign keys enforced,
    /// and a wait of up to five seconds for another writer (the CLI, a second connection).
    private static func openConnection(_ path: String, logger: Logger) async throws -> SQLiteConnection {
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        do {
            for pragma in ["PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON", "PRAGMA busy_timeout = 5000"] {
                _ = try await connection.query(pragma)
            }
            return connection
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Performs a real write (an upsert into `readiness_probe`) to prove the database accepts writes.
    public func probeWrite() async throws {
        // SQLite may hand a new connection a recycled read-write descriptor, so a file whose
        // permissions changed under a running server is checked directly as well.
        // The -wal file exists only while connections are open; the database file must always.
        let files = FileManager.default.fileExists(atPath: path + "-wal") ? [path, path + "-wal"] : [path]
        for file in files {
            guard access(file, W_OK) == 0 else {
                throw Failure(reason: "\(file) is not writable (\(String(cString: strerror(errno))))")
            }
        }
        let probe = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        do {
            _ = try await probe.query("PRAGMA busy_timeout = \(probeTimeoutMilliseconds)")
            _ = try await probe.query(
                "INSERT INTO readiness_probe (id, checked_at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at",
                [.text(Date().ISO8601Format())]
            )
            try await probe.close()
        } catch {
            try? await probe.close()
            throw error
        }
    }

    /// A failure Cortex detects itself (an unwritable file, an existing backup target), as opposed to one SQLite reports.
    public struct Failure: Error, CustomStringConvertible {
        /// What was found.
        public var reason: String
        public var description: String { reason }
    }

    /// Runs one statement on the writer connection and returns its rows.
    func query(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        try await connection.query(sql, binds)
    }

    /// Writes a consistent copy of the database to `destination` while the server keeps running.
    ///
    /// Uses SQLite's `VACUUM INTO`: one read transaction sees a single committed state, so the
    /// copy never mixes old pages with new ones, which a plain `cp` of a WAL database can. The
    /// destination must not exist.
    public func backup(to destination: String) async throws {
        let absolute = URL(fileURLWithPath: destination).standardizedFileURL.path
        guard !FileManager.default.fileExists(atPath: absolute) else {
            throw Failure(reason: "\(absolute) already exists; choose a new file name")
        }
        _ = try await query("VACUUM INTO ?", [.text(absolute)])
    }

    /// Checks the database and returns every problem found; empty means healthy.
    ///
    /// SQLite's own `integrity_check` (pages, indexes) and `foreign_key_check` (every key and
    /// entry belongs to an existing tenant), then the ledger's invariants (see ``Ledger/verify(at:slack:)``).
    public func verify(at time: Date = Date(), holdSlack: Duration = .seconds(60)) async throws -> [String] {
        var problems: [String] = []
        for row in try await query("PRAGMA integrity_check") {
            if let message = row.column("integrity_check")?.string, message != "ok" {
                problems.append("integrity: \(message)")
            }
        }
        for row in try await query("PRAGMA foreign_key_check") {
            let table = row.column("table")?.string ?? "?"
            let rowid = row.column("rowid")?.integer.map(String.init) ?? "?"
            let parent = row.column("parent")?.string ?? "?"
            problems.append("foreign key: \(table) row \(rowid) points at a missing \(parent) row")
        }
        return problems + (try await ledger.verify(at: time, slack: holdSlack))
    }

    /// The highest applied schema version.
    public func schemaVersion() async throws -> Int {
        try await SQLiteMigrator(connection: connection, logger: logger).currentVersion()
    }

    /// Closes the connections.
    public func close() async {
        try? await ledgerConnection.close()
        try? await connection.close()
    }
}
