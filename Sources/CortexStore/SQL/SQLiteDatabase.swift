import SQLiteNIO

/// ``SQLDatabase`` on one SQLite connection.
///
/// A transaction holds the connection's write lock from its start (`BEGIN IMMEDIATE`), so two
/// writers never deadlock trying to upgrade a read lock, and nothing else may use this
/// connection while one is open: give each writer its own connection.
struct SQLiteDatabase: SQLDatabase {
    var dialect: SQLDialect { .sqlite }
    let connection: SQLiteConnection
    /// Checked before every statement outside a transaction and once at the start of each
    /// transaction, once the database is in WAL mode.
    var sharedMemory: SharedMemoryGuard?

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try sharedMemory?.check()
        let rows = try await connection.query(Self.sqliteSQL(sql), binds.map(Self.data))
        return try rows.map { row in
            var values: [String: SQLValue] = [:]
            for column in row.columns {
                switch column.data {
                case .integer(let value): values[column.name] = .integer(Int64(value))
                case .text(let value): values[column.name] = .text(value)
                case .float(let value):
                    // Cortex stores no floats: one here was written outside Cortex, or is a sum
                    // that overflowed. Reading it as an integer would be wrong (or trap).
                    guard let integer = Int64(exactly: value) else { throw NotAnInteger(column: column.name, value: value) }
                    values[column.name] = .integer(integer)
                case .blob, .null: values[column.name] = .null
                }
            }
            return SQLRow(values: values)
        }
    }

    /// A column that holds a float where Cortex keeps whole numbers.
    struct NotAnInteger: Error, CustomStringConvertible {
        var column: String
        var value: Double
        var description: String {
            "the database holds \(value) in column '\(column)', where Cortex keeps whole numbers; `cortex db verify` names the rows"
        }
    }

    /// Always durable (the connection's `synchronous = FULL`); only the ledger's writer relaxes it.
    func transaction<T: Sendable>(durable: Bool, _ body: (any SQLDatabase) async throws -> T) async throws -> T {
        try sharedMemory?.check()
        return try await SQLiteDatabase(connection: connection, sharedMemory: nil).inTransaction(begin: ["BEGIN IMMEDIATE"], body)
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

    static func data(_ value: SQLValue) -> SQLiteData {
        switch value {
        case .integer(let value): .integer(Int(value))
        case .text(let value): .text(value)
        case .null: .null
        }
    }
}
