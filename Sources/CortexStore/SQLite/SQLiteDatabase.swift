/// ``SQLDatabase`` on one ``SQLiteConnection`` whose statements run on a thread of its own
/// (`executor`), so a statement waiting for the disk or a lock never holds up an event loop.
///
/// A transaction holds the connection's write lock from its start (`BEGIN IMMEDIATE`), so two
/// writers never deadlock trying to upgrade a read lock, and nothing else may use this
/// connection while one is open: give each writer its own connection.
struct SQLiteDatabase: SQLDatabase {
    var dialect: SQLDialect { .sqlite }
    let connection: SQLiteConnection
    /// The thread every statement of `connection` runs on, one at a time.
    let executor: ThreadExecutor
    /// Checked before every statement outside a transaction and once at the start of each
    /// transaction, once the database is in WAL mode.
    var sharedMemory: SharedMemoryGuard?

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try sharedMemory?.check()
        let connection = self.connection
        return try await withTaskExecutorPreference(executor) { try connection.execute(sql, binds) }
    }

    /// Always durable (the connection's `synchronous = FULL`); only the ledger's writer relaxes it.
    func transaction<T: Sendable>(durable: Bool, _ body: (any SQLDatabase) async throws -> T) async throws -> T {
        try sharedMemory?.check()
        return try await SQLiteDatabase(connection: connection, executor: executor, sharedMemory: nil)
            .inTransaction(begin: ["BEGIN IMMEDIATE"], body)
    }

    /// Rewrites `$N` placeholders as SQLite's `?N`, leaving string literals alone.
    static func sqliteSQL(_ sql: String) -> String {
        guard sql.contains("$") else { return sql }
        var result = ""
        result.reserveCapacity(sql.utf8.count)
        var inString = false
        for character in sql {
            if character == "'" { inString.toggle() }
            result.append(character == "$" && !inString ? "?" : character)
        }
        return result
    }
}
