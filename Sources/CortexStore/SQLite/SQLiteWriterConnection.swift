import Foundation
import VaporCSQLite

/// A synchronous SQLite connection for the ledger's writer, with prepared statements cached.
///
/// sqlite-nio runs every statement as a job on NIO's thread pool and hands rows back through the
/// event loop, two hops per statement that queue behind HTTP work on a busy server. The ledger
/// runs many small statements per shared transaction, so its writer calls SQLite (the copy
/// sqlite-nio bundles) directly, on a thread of its own (see ``ThreadExecutor``): a statement
/// costs microseconds, and only the commit's fsync waits for the disk.
///
/// Not thread-safe: used only by the group committer's task, pinned to one thread.
final class SQLiteWriterConnection: @unchecked Sendable {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    /// `synchronous` as last set: FULL (commits reach the disk) or NORMAL (WAL only).
    private var synchronousFull = true

    init(path: String) throws {
        var handle: OpaquePointer?
        let status = sqlite_nio_sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        self.handle = handle
        guard status == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? "cannot open"
            close()
            throw StoreFailure(reason: "SQLite: \(message) (\(path))")
        }
        sqlite_nio_sqlite3_busy_timeout(handle, 5000)
        for pragma in ["PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"] {
            _ = try execute(pragma, [])
        }
    }

    deinit {
        close()
    }

    /// Runs one statement and returns its rows; `$N` placeholders as in ``SQLDatabase``.
    func execute(_ sql: String, _ binds: [SQLValue]) throws -> [SQLRow] {
        let statement = try prepared(sql)
        defer {
            sqlite_nio_sqlite3_reset(statement)
            sqlite_nio_sqlite3_clear_bindings(statement)
        }
        for (index, bind) in binds.enumerated() {
            let position = Int32(index + 1)
            let status: Int32
            switch bind {
            case .integer(let value): status = sqlite_nio_sqlite3_bind_int64(statement, position, value)
            case .text(let value): status = sqlite_nio_sqlite3_bind_text(statement, position, value, -1, Self.transient)
            case .null: status = sqlite_nio_sqlite3_bind_null(statement, position)
            }
            guard status == SQLITE_OK else { throw failure(sql) }
        }
        var rows: [SQLRow] = []
        while true {
            switch sqlite_nio_sqlite3_step(statement) {
            case SQLITE_ROW:
                var values: [String: SQLValue] = [:]
                for column in 0..<sqlite_nio_sqlite3_column_count(statement) {
                    let name = String(cString: sqlite_nio_sqlite3_column_name(statement, column))
                    switch sqlite_nio_sqlite3_column_type(statement, column) {
                    case SQLITE_INTEGER, SQLITE_FLOAT: values[name] = .integer(sqlite_nio_sqlite3_column_int64(statement, column))
                    case SQLITE_TEXT: values[name] = .text(String(cString: sqlite_nio_sqlite3_column_text(statement, column)))
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

    func close() {
        for statement in statements.values { sqlite_nio_sqlite3_finalize(statement) }
        statements.removeAll()
        if let handle { sqlite_nio_sqlite3_close_v2(handle) }
        handle = nil
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        guard sqlite_nio_sqlite3_prepare_v2(handle, SQLiteDatabase.sqliteSQL(sql), -1, &statement, nil) == SQLITE_OK, let statement else {
            throw failure(sql)
        }
        statements[sql] = statement
        return statement
    }

    private func failure(_ sql: String) -> StoreFailure {
        let message = handle.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? "closed"
        return StoreFailure(reason: "SQLite: \(message)")
    }

    /// SQLite copies bound text before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}

/// ``SQLDatabase`` on a ``SQLiteWriterConnection``: statements run synchronously on the caller's thread.
struct SQLiteWriterDatabase: SQLDatabase {
    var dialect: SQLDialect { .sqlite }
    let connection: SQLiteWriterConnection
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
