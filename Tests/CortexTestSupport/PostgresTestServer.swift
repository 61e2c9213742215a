public import Foundation
import Logging
import PostgresNIO

/// The throw-away PostgreSQL cluster `make test` starts (scripts/postgres.sh), and a fresh
/// database on it for each test.
public enum PostgresTestServer {
    /// Why a PostgreSQL test cannot run.
    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The cluster's URL, from `CORTEX_TEST_POSTGRES_URL`.
    public static func url() throws -> URLComponents {
        guard let text = ProcessInfo.processInfo.environment["CORTEX_TEST_POSTGRES_URL"], let url = URLComponents(string: text),
            url.host != nil
        else {
            throw Unavailable(
                description:
                    "PostgreSQL tests need CORTEX_TEST_POSTGRES_URL; `make test` starts a throw-away cluster for them (scripts/postgres.sh start)"
            )
        }
        return url
    }

    /// Creates an empty database and returns its URL.
    public static func createDatabase() async throws -> String {
        var url = try url()
        let name = "cortex_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await admin("CREATE DATABASE \(name)")
        url.path = "/" + name
        return url.string ?? ""
    }

    /// Drops a database made by ``createDatabase()``, disconnecting whoever still uses it.
    public static func dropDatabase(_ url: String) async throws {
        guard let name = URLComponents(string: url)?.path.dropFirst(), name.hasPrefix("cortex_test_") else { return }
        try await admin("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs `body` with a fresh database's URL and drops the database after.
    public static func withDatabase<Value>(_ body: (String) async throws -> Value) async throws -> Value {
        let url = try await createDatabase()
        do {
            let value = try await body(url)
            try await dropDatabase(url)
            return value
        } catch {
            try? await dropDatabase(url)
            throw error
        }
    }

    private static func admin(_ sql: String) async throws {
        let url = try url()
        let connection = try await PostgresConnection.connect(
            configuration: .init(
                host: url.host ?? "127.0.0.1",
                port: url.port ?? 5432,
                username: url.user ?? "postgres",
                password: url.password,
                database: "postgres",
                tls: .disable
            ),
            id: 1,
            logger: Logger(label: "postgres-test")
        )
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "postgres-test"))
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}
