/// The SQL engines Cortex speaks.
enum SQLDialect: Sendable {
    case sqlite
    case postgres
}

/// A value bound to, or read from, a SQL statement: the few types Cortex stores.
package enum SQLValue: Sendable, Hashable {
    case integer(Int64)
    case text(String)
    case null
    /// A PostgreSQL `bigint[]`, for set-based statements (`unnest`); never read back.
    case integers([Int64])
    /// A PostgreSQL `text[]`, for set-based statements (`unnest`); never read back.
    case texts([String])

    /// `.null` for `nil`.
    static func integer(_ value: Int64?) -> SQLValue { value.map { .integer($0) } ?? .null }
    /// `.null` for `nil`.
    static func text(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
}

/// One result row, by column name.
package struct SQLRow: Sendable {
    package var values: [String: SQLValue]

    /// The integer in `column`, or `nil` for NULL, a missing column or text.
    package func integer(_ column: String) -> Int64? {
        if case .integer(let value) = values[column] { return value }
        return nil
    }

    /// The text in `column`, or `nil` for NULL, a missing column or an integer.
    package func text(_ column: String) -> String? {
        if case .text(let value) = values[column] { return value }
        return nil
    }
}

/// Runs SQL on one database, whichever engine it is.
///
/// Statements are written once, with numbered placeholders (`$1`, `$2`, ...) that each engine
/// binds in its own way, and with SQL that SQLite and PostgreSQL both accept (`RETURNING`,
/// `ON CONFLICT ... DO NOTHING`). What differs between the engines (schemas, backups) stays in
/// the engine's own store.
protocol SQLDatabase: Sendable {
    /// Which engine runs the SQL, for the few statements written per engine for speed.
    var dialect: SQLDialect { get }
    /// Runs one statement and returns its rows.
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
    /// Runs `body` in one transaction on one connection: committed when `body` returns, rolled
    /// back when it throws.
    ///
    /// With `durable`, the commit is on disk when this returns. Without, it is visible to every
    /// later transaction but reaches the disk with the next durable commit (both engines write
    /// one log in order), so a crash can lose it only together with everything after it.
    func transaction<T: Sendable>(durable: Bool, _ body: (any SQLDatabase) async throws -> T) async throws -> T
}

extension SQLDatabase {
    /// Runs `begin` (`BEGIN` and any settings for the transaction), then `body`, then `COMMIT`;
    /// `ROLLBACK` if anything after `BEGIN` fails. For a database whose statements all run on one connection.
    nonisolated(nonsending) func inTransaction<T: Sendable>(begin: [String], _ body: (any SQLDatabase) async throws -> T) async throws -> T
    {
        guard let first = begin.first else { preconditionFailure("a transaction starts with BEGIN") }
        _ = try await query(first)
        do {
            for statement in begin.dropFirst() {
                _ = try await query(statement)
            }
            let result = try await body(self)
            _ = try await query("COMMIT")
            return result
        } catch {
            _ = try? await query("ROLLBACK")
            throw error
        }
    }

    /// Runs `body` in one durable transaction.
    func transaction<T: Sendable>(_ body: (any SQLDatabase) async throws -> T) async throws -> T {
        try await transaction(durable: true, body)
    }

    /// Runs one statement without binds.
    func query(_ sql: String) async throws -> [SQLRow] {
        try await query(sql, [])
    }
}
