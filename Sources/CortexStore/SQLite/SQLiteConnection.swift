import CSQLite
import Foundation

/// A synchronous connection to the system's SQLite, with prepared statements cached: the one
/// way Cortex talks to SQLite (the store's reads, the ledger's writer, the readiness probe, and
/// the tests' direct looks at the file).
///
/// A statement costs microseconds and blocks only for the disk (a commit's fsync) or a lock
/// (up to the busy timeout), so callers run it on a thread of their own (see ``ThreadExecutor``),
/// never on an event loop.
///
/// Not thread-safe: each connection is used by one thread at a time.
package final class SQLiteConnection: @unchecked Sendable {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    /// `synchronous` as last set: FULL (commits reach the disk) or NORMAL (WAL only).
    private var synchronousFull = true

    /// Opens (creating) the file at `path`, with commits synced to disk, foreign keys enforced and
    /// up to `busyTimeoutMilliseconds` of waiting for another connection's lock.
    package init(path: String, busyTimeoutMilliseconds: Int32 = 5000) throws {
        _ = Self.configured
        var handle: OpaquePointer?
        let status = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        self.handle = handle
        guard status == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            close()
            throw StoreFailure(reason: "SQLite: \(message) (\(path))")
        }
        sqlite3_busy_timeout(handle, busyTimeoutMilliseconds)
        for pragma in ["PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"] {
            _ = try execute(pragma, [])
        }
    }

    deinit {
        close()
    }

    /// The library's process-wide settings, applied before the first connection opens.
    private static let configured: Void = {
        _ = cortex_sqlite3_disable_memory_statistics()
    }()

    /// Runs one statement and returns its rows; `$N` placeholders as in ``SQLDatabase``.
    ///
    /// - Throws: ``StoreFailure`` with SQLite's message; ``NotAnInteger`` for a float that is not
    ///   a whole number (Cortex stores none: one was written outside Cortex, or a sum overflowed).
    package func execute(_ sql: String, _ binds: [SQLValue]) throws -> [SQLRow] {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, bind) in binds.enumerated() {
            let position = Int32(index + 1)
            let status: Int32
            switch bind {
            case .integer(let value): status = sqlite3_bind_int64(statement, position, value)
            case .text(let value): status = sqlite3_bind_text(statement, position, value, -1, Self.transient)
            case .null: status = sqlite3_bind_null(statement, position)
            case .integers, .texts: throw StoreFailure(reason: "SQLite has no array values; set-based statements are PostgreSQL's")
            }
            guard status == SQLITE_OK else { throw failure(sql) }
        }
        var rows: [SQLRow] = []
        while true {
            switch sqlite3_step(statement) {
            case SQLITE_ROW:
                var values: [String: SQLValue] = [:]
                for column in 0..<sqlite3_column_count(statement) {
                    let name = String(cString: sqlite3_column_name(statement, column))
                    switch sqlite3_column_type(statement, column) {
                    case SQLITE_INTEGER: values[name] = .integer(sqlite3_column_int64(statement, column))
                    case SQLITE_FLOAT:
                        let value = sqlite3_column_double(statement, column)
                        guard let integer = Int64(exactly: value) else { throw NotAnInteger(column: name, value: value) }
                        values[name] = .integer(integer)
                    case SQLITE_TEXT: values[name] = .text(String(cString: sqlite3_column_text(statement, column)))
                    default: values[name] = .null
                    }
                }
                rows.append(SQLRow(values: values))
            case SQLITE_DONE:
                return rows
            default:
                throw failure(sql)
            }
        }
    }

    /// Sets whether commits wait for the disk. In WAL mode a later synced commit also syncs every
    /// frame written before it, so work committed unsynced becomes durable with the next synced commit.
    func setSynchronous(full: Bool) throws {
        guard full != synchronousFull else { return }
        _ = try execute(full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", [])
        synchronousFull = full
    }

    package func close() {
        for statement in statements.values { sqlite3_finalize(statement) }
        statements.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, SQLiteDatabase.sqliteSQL(sql), -1, &statement, nil) == SQLITE_OK, let statement else {
            throw failure(sql)
        }
        statements[sql] = statement
        return statement
    }

    private func failure(_ sql: String) -> StoreFailure {
        let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "closed"
        return StoreFailure(reason: "SQLite: \(message)")
    }

    /// SQLite copies bound text before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}

/// A column that holds a float where Cortex keeps whole numbers.
struct NotAnInteger: Error, CustomStringConvertible {
    var column: String
    var value: Double
    var description: String {
        "the database holds \(value) in column '\(column)', where Cortex keeps whole numbers; `cortex db verify` names the rows"
    }
}

/// ``SQLDatabase`` on a ``SQLiteConnection`` for the ledger's writer: statements run
/// synchronously on the caller's thread (the writer's own).
struct SQLiteWriterDatabase: SQLDatabase {
    var dialect: SQLDialect { .sqlite }
    let connection: SQLiteConnection
    /// Checked before every statement outside a transaction, and once at the start of each
    /// transaction, whose statements follow within microseconds (see ``SharedMemoryGuard``).
    let sharedMemory: SharedMemoryGuard?

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try sharedMemory?.check()
        return try connection.execute(sql, binds)
    }

    func transaction<T: Sendable>(durable: Bool, _ body: (any SQLDatabase) async throws -> T) async throws -> T {
        try sharedMemory?.check()
        try connection.setSynchronous(full: durable)
        return try await SQLiteWriterDatabase(connection: connection, sharedMemory: nil).inTransaction(begin: ["BEGIN IMMEDIATE"], body)
    }
}
