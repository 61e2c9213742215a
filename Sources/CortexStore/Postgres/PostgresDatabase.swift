import Foundation
import Logging
import PostgresNIO

/// ``SQLDatabase`` on a PostgreSQL connection pool.
///
/// Statements run on any pooled connection; a transaction leases one connection for its whole
/// body. Integers travel as `int8`, text as `text`; `numeric` results (PostgreSQL's `SUM` of
/// `bigint`) are read back exactly as integers.
struct PostgresDatabase: SQLDatabase {
    var dialect: SQLDialect { .postgres }
    let client: PostgresClient
    let logger: Logger

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await Self.query(sql, binds, logger: logger) { query in
            try await client.query(query, logger: logger)
        }
    }

    func prepared(_ statement: PreparedLedgerBatch) async throws -> [SQLRow] {
        try await Self.rows { try await client.execute(statement, logger: logger) }
    }

    func transaction<T: Sendable>(durable: Bool, _ body: (any SQLDatabase) async throws -> T) async throws -> T {
        try await client.withConnection { leased in
            try await TransactionConnection(connection: leased, logger: logger).inTransaction(
                begin: durable ? ["BEGIN"] : ["BEGIN", "SET LOCAL synchronous_commit = off"],
                body
            )
        }
    }

    /// Statements inside a transaction: all on the one leased connection.
    struct TransactionConnection: SQLDatabase {
        var dialect: SQLDialect { .postgres }
        let connection: PostgresConnection
        let logger: Logger

        func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
            try await PostgresDatabase.query(sql, binds, logger: logger) { query in
                try await connection.query(query, logger: logger)
            }
        }

        func transaction<T: Sendable>(durable: Bool, _ body: (any SQLDatabase) async throws -> T) async throws -> T {
            // Already in one: nested work joins it.
            try await body(self)
        }

        func prepared(_ statement: PreparedLedgerBatch) async throws -> [SQLRow] {
            try await PostgresDatabase.rows { try await connection.execute(statement, logger: logger) }
        }
    }

    /// Every row `run` answers, read into ``SQLRow``s; PostgreSQL's errors as ``PostgresFailure``.
    static func rows<Rows: AsyncSequence>(_ run: () async throws -> Rows) async throws -> [SQLRow] where Rows.Element == PostgresRow {
        do {
            var rows: [SQLRow] = []
            for try await row in try await run() {
                rows.append(try sqlRow(row))
            }
            return rows
        } catch let error as PSQLError {
            throw PostgresFailure(error)
        }
    }

    private static func sqlRow(_ row: PostgresRow) throws -> SQLRow {
        var values: [String: SQLValue] = [:]
        for cell in row {
            values[cell.columnName] = try value(of: cell)
        }
        return SQLRow(values: values)
    }

    static func bindings(_ binds: [SQLValue]) -> PostgresBindings {
        var bindings = PostgresBindings(capacity: binds.count)
        for bind in binds {
            switch bind {
            case .integer(let value): bindings.append(value)
            case .text(let value): bindings.append(value)
            case .null: bindings.appendNull()
            case .integers(let values): bindings.append(values)
            case .texts(let values): bindings.append(values)
            }
        }
        return bindings
    }

    static func query(
        _ sql: String,
        _ binds: [SQLValue],
        logger: Logger,
        run: (PostgresQuery) async throws -> PostgresRowSequence
    ) async throws -> [SQLRow] {
        try await rows { try await run(PostgresQuery(unsafeSQL: sql, binds: bindings(binds))) }
    }

    private static func value(of cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8, .oid:
            return .integer(try cell.decode(Int64.self))
        case .numeric:
            // Exact: an integral numeric prints as its digits.
            let decimal = try cell.decode(Decimal.self)
            guard let integer = Int64(decimal.description) else { throw PostgresFailure(message: "numeric \(decimal) is not an integer") }
            return .integer(integer)
        case .bool:
            return .integer(try cell.decode(Bool.self) ? 1 : 0)
        default:
            return .text(try cell.decode(String.self))
        }
    }
}

/// The ledger's batch statement (``PostgresLedgerBatch``), which PostgreSQL parses and plans once
/// per connection (by name), then only binds and runs: planning it costs more than running it.
struct PreparedLedgerBatch: PostgresPreparedStatement {
    typealias Row = PostgresRow
    static let name = "cortex_ledger_batch"
    static let sql = PostgresLedgerBatch.statement
    var binds: [SQLValue]

    func makeBindings() throws -> PostgresBindings { PostgresDatabase.bindings(binds) }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// Runs the prepared statement; the PostgreSQL databases' part beyond ``SQLDatabase``.
protocol PreparedStatementRunner {
    func prepared(_ statement: PreparedLedgerBatch) async throws -> [SQLRow]
}

extension PostgresDatabase: PreparedStatementRunner {}
extension PostgresDatabase.TransactionConnection: PreparedStatementRunner {}

/// A PostgreSQL error with the server's message and SQLSTATE, which `PSQLError` keeps out of its description.
public struct PostgresFailure: Error, CustomStringConvertible {
    /// What the server (or the driver) said.
    public var message: String
    /// The SQLSTATE code, such as `23505` for a unique violation.
    public var sqlState: String?

    init(message: String, sqlState: String? = nil) {
        self.message = message
        self.sqlState = sqlState
    }

    init(_ error: PSQLError) {
        if let info = error.serverInfo {
            self.init(message: info[.message] ?? "\(error.code)", sqlState: info[.sqlState])
        } else {
            self.init(message: "\(error.code)")
        }
    }

    public var description: String {
        sqlState.map { "\(message) (SQLSTATE \($0))" } ?? message
    }
}
