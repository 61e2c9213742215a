import CortexCore
import Foundation
import Logging
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded SQLite database: one file in WAL mode with versioned migrations.
///
/// Two connections to the system's SQLite (``SQLiteConnection``), each on a thread of its own: one
/// for reads and single-statement writes, and one that only the ledger's group commit uses, since
/// its transactions span several statements that must not pick up other queries. The readiness
/// probe opens a fresh connection each time with a short busy timeout, so a database that became
/// locked, read-only, moved or unreachable fails the probe quickly instead of hanging it or
/// passing on a stale handle.
final class SQLiteEngine: StorageEngine {
    /// The absolute path of the database file.
    let path: String
    let reader: any SQLDatabase
    let writer: any SQLDatabase
    var writerExecutor: (any TaskExecutor)? { executor }
    /// A batch's holds, settlements and releases in a few statements.
    var batchStatement: GroupCommitter.BatchStatement? {
        GroupCommitter.BatchStatement(isOwnTransaction: false) { writes, _, database in
            try await SQLiteLedgerBatch.run(writes, in: database)
        }
    }
    private let connection: SQLiteConnection
    private let ledgerConnection: SQLiteConnection
    /// The ledger writer's thread.
    private let executor: ThreadExecutor
    /// The reader connection's thread.
    private let readerExecutor: ThreadExecutor
    private let probeTimeoutMilliseconds: Int
    private let sharedMemory: SharedMemoryGuard?
    private let logger: Logger

    var location: String { path }
    var localPath: String? { path }

    private init(
        path: String,
        connection: SQLiteConnection,
        readerExecutor: ThreadExecutor,
        ledgerConnection: SQLiteConnection,
        probeTimeoutMilliseconds: Int,
        logger: Logger
    ) {
        self.path = path
        self.connection = connection
        self.readerExecutor = readerExecutor
        self.ledgerConnection = ledgerConnection
        self.executor = ThreadExecutor(name: "cortex-ledger")
        let sharedMemory = SharedMemoryGuard(databasePath: path)
        self.sharedMemory = sharedMemory
        self.reader = SQLiteDatabase(connection: connection, executor: readerExecutor, sharedMemory: sharedMemory)
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
        let readerExecutor = ThreadExecutor(name: "cortex-sqlite")
        do {
            let connection = try await withTaskExecutorPreference(readerExecutor) { try SQLiteConnection(path: absolute) }
            let database = SQLiteDatabase(connection: connection, executor: readerExecutor)
            do {
                _ = try await database.query("PRAGMA journal_mode = WAL", [])
                try await SQLMigrator(database: database, migrations: SQLiteMigrations.all, logger: logger).migrate()
                let ledgerConnection = try SQLiteConnection(path: absolute)
                return SQLiteEngine(
                    path: absolute,
                    connection: connection,
                    readerExecutor: readerExecutor,
                    ledgerConnection: ledgerConnection,
                    probeTimeoutMilliseconds: probeTimeoutMilliseconds,
                    logger: logger
                )
            } catch {
                await withTaskExecutorPreference(readerExecutor) { connection.close() }
                throw error
            }
        } catch {
            readerExecutor.shutdown()
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
        // On NIO's thread pool: it may wait up to the busy timeout for a lock.
        let (path, timeout) = (self.path, Int32(clamping: probeTimeoutMilliseconds))
        try await NIOThreadPool.singleton.runIfActive {
            let probe = try SQLiteConnection(path: path, busyTimeoutMilliseconds: timeout)
            defer { probe.close() }
            _ = try probe.execute(
                "INSERT INTO readiness_probe (id, checked_at) VALUES (1, $1) ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at",
                [.text(Date().ISO8601Format())]
            )
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
        for row in try await reader.query("PRAGMA integrity_check", []) {
            if let message = row.text("integrity_check"), message != "ok" {
                problems.append("integrity: \(message)")
            }
        }
        for row in try await reader.query("PRAGMA foreign_key_check", []) {
            let table = row.text("table") ?? "?"
            let rowid = row.integer("rowid").map(String.init) ?? "?"
            let parent = row.text("parent") ?? "?"
            problems.append("foreign key: \(table) row \(rowid) points at a missing \(parent) row")
        }
        return problems
    }

    func close() async {
        // On the writer's thread, after any batch in progress.
        await withTaskExecutorPreference(executor) { [ledgerConnection] in ledgerConnection.close() }
        executor.shutdown()
        await withTaskExecutorPreference(readerExecutor) { [connection] in connection.close() }
        readerExecutor.shutdown()
    }
}
