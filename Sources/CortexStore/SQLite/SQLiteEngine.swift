import CortexCore
import Foundation
import Logging
import SQLiteNIO

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded SQLite database: one file in WAL mode with versioned migrations.
///
/// Two connections: one for reads and single-statement writes (sqlite-nio), and one that only the
/// ledger's group commit uses, since its transactions span several statements that must not pick
/// up other queries (``SQLiteWriterConnection``, on a thread of its own). The readiness probe opens a fresh connection each time with a short busy timeout,
/// so a database that became locked, read-only, moved or unreachable fails the probe quickly
/// instead of hanging it or passing on a stale handle.
final class SQLiteEngine: StorageEngine {
    /// The absolute path of the database file.
    let path: String
    let reader: any SQLDatabase
    let writer: any SQLDatabase
    var writerExecutor: (any TaskExecutor)? { executor }
    private let connection: SQLiteConnection
    private let ledgerConnection: SQLiteWriterConnection
    private let executor: ThreadExecutor
    private let probeTimeoutMilliseconds: Int
    private let sharedMemory: SharedMemoryGuard?
    private let logger: Logger

    var location: String { path }
    var localPath: String? { path }

    private init(
        path: String,
        connection: SQLiteConnection,
        ledgerConnection: SQLiteWriterConnection,
        probeTimeoutMilliseconds: Int,
        logger: Logger
    ) {
        self.path = path
        self.connection = connection
        self.ledgerConnection = ledgerConnection
        self.executor = ThreadExecutor(name: "cortex-ledger")
        let sharedMemory = SharedMemoryGuard(databasePath: path)
        self.sharedMemory = sharedMemory
        self.reader = SQLiteDatabase(connection: connection, sharedMemory: sharedMemory)
        self.writer = SQLiteWriterDatabase(connection: ledgerConnection, sharedMemory: sharedMemory)
        self.probeTimeoutMilliseconds = max(probeTimeoutMilliseconds, 1)
        self.logger = logger
    }

    static func open(path: String, probeTimeoutMilliseconds: Int, logger: Logger) async throws -> SQLiteEngine {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        try FileManager.default.createDirectory(
            atPath: (absolute as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        let connection = try await openConnection(absolute, logger: logger)
        do {
            _ = try await connection.query("PRAGMA journal_mode = WAL")
            try await SQLMigrator(database: SQLiteDatabase(connection: connection), migrations: SQLiteMigrations.all, logger: logger)
                .migrate()
            let ledgerConnection = try SQLiteWriterConnection(path: absolute)
            return SQLiteEngine(
                path: absolute,
                connection: connection,
                ledgerConnection: ledgerConnection,
                probeTimeoutMilliseconds: probeTimeoutMilliseconds,
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

    /// Performs a real write (an upsert into `readiness_probe`) on a fresh connection.
    func probeWrite() async throws {
        // First, before a new connection maps it: a changed shared-memory file would kill the process.
        try sharedMemory?.check()
        // SQLite may hand a new connection a recycled read-write descriptor, so a file whose
        // permissions changed under a running server is checked directly as well.
        // The -wal file exists only while connections are open; the database file must always.
        let files = FileManager.default.fileExists(atPath: path + "-wal") ? [path, path + "-wal"] : [path]
        for file in files {
            guard access(file, W_OK) == 0 else {
                throw StoreFailure(reason: "\(file) is not writable (\(String(cString: strerror(errno))))")
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

    /// Writes a consistent copy with SQLite's `VACUUM INTO`: one read transaction sees a single
    /// committed state, so the copy never mixes old pages with new ones, which a plain `cp` of a
    /// WAL database can. The destination must not exist.
    func backup(to destination: String) async throws {
        let absolute = URL(fileURLWithPath: destination).standardizedFileURL.path
        guard !FileManager.default.fileExists(atPath: absolute) else {
            throw StoreFailure(reason: "\(absolute) already exists; choose a new file name")
        }
        _ = try await reader.query("VACUUM INTO $1", [.text(absolute)])
    }

    /// SQLite's `integrity_check` (pages, indexes) and `foreign_key_check` (every key and entry
    /// belongs to an existing tenant).
    func integrityProblems() async throws -> [String] {
        try sharedMemory?.check()
        var problems: [String] = []
        for row in try await connection.query("PRAGMA integrity_check") {
            if let message = row.column("integrity_check")?.string, message != "ok" {
                problems.append("integrity: \(message)")
            }
        }
        for row in try await connection.query("PRAGMA foreign_key_check") {
            let table = row.column("table")?.string ?? "?"
            let rowid = row.column("rowid")?.integer.map(String.init) ?? "?"
            let parent = row.column("parent")?.string ?? "?"
            problems.append("foreign key: \(table) row \(rowid) points at a missing \(parent) row")
        }
        return problems
    }

    func close() async {
        // On the writer's thread, after any batch in progress.
        await withTaskExecutorPreference(executor) { [ledgerConnection] in ledgerConnection.close() }
        executor.shutdown()
        try? await connection.close()
    }
}
