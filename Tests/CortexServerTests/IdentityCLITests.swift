import Foundation
import Testing

@testable import CortexStore

/// `cortex tenants` and `cortex keys` against a real database file, as an operator runs them.
@Suite("Identity CLI", .serialized)
struct IdentityCLITests {
    /// Runs the CLI on `database`: an SQLite file path, or a `postgres://` URL.
    static func run(_ arguments: [String], database: String) async throws -> (status: Int32?, stdout: String, stderr: String) {
        let url = database.hasPrefix("postgres") ? database : "sqlite:" + database
        return try await CortexProcess.run(arguments, environment: ["DATABASE_URL": url])
    }

    @Test("create a tenant, issue a key shown once, list it by prefix, revoke it with a grace period")
    func lifecycle() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.file("cortex.db")

        let created = try await Self.run(["tenants", "create", "acme"], database: database)
        #expect(created.status == 0)
        #expect(created.stdout.contains("created tenant acme"))
        let duplicate = try await Self.run(["tenants", "create", "acme"], database: database)
        #expect(duplicate.status == 1)
        #expect(duplicate.stderr.contains("already exists"))
        #expect(try await Self.run(["tenants", "list"], database: database).stdout.contains("\tacme\t"))

        let issued = try await Self.run(["keys", "create", "--tenant", "acme", "--scopes", "infer,admin"], database: database)
        #expect(issued.status == 0)
        let key = issued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(key.hasPrefix("ctx_") && key.count == 4 + 8 + 1 + 32)
        #expect(issued.stderr.contains("cannot be shown again"))

        let listed = try await Self.run(["keys", "list", "--tenant", "acme"], database: database)
        let prefix = String(key.prefix(12))
        #expect(listed.stdout.contains("\(prefix)\tadmin,infer\tgenerated\tactive"))
        #expect(!listed.stdout.contains(key), "the secret is never shown again")

        // The files themselves (database and write-ahead log) hold no key, only its hash.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: database))
        if let wal = FileManager.default.contents(atPath: database + "-wal") { bytes += wal }
        #expect(bytes.range(of: Data(key.utf8)) == nil)
        #expect(bytes.range(of: Data(APIKeyHash.of(key).utf8)) != nil, "the search can find what is there")

        let revoked = try await Self.run(["keys", "revoke", "1", "--grace", "1h"], database: database)
        #expect(revoked.status == 0)
        #expect(try await Self.run(["keys", "list", "--tenant", "acme"], database: database).stdout.contains("revoking at"))
        #expect(try await Self.run(["keys", "revoke", "1"], database: database).status == 0)
        #expect(try await Self.run(["keys", "list", "--tenant", "acme"], database: database).stdout.contains("\trevoked\t"))
    }

    @Test(
        "mistakes are named and exit non-zero",
        arguments: [
            (["keys", "create", "--tenant", "nobody"], "no tenant named 'nobody'"),
            (["keys", "create", "--tenant", "x", "--scopes", "write"], "--scopes"),
            (["keys", "revoke", "42"], "no key with id 42"),
            (["tenants", "create", "bad name"], "invalid tenant name"),
            (["keys", "create", "--tenant", "x", "--expires-in", "soon"], "expires-in"),
        ])
    func mistakes(arguments: [String], message: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let result = try await Self.run(arguments, database: directory.file("cortex.db"))
        #expect(result.status != 0 && result.status != nil)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }
}

@Suite("Database CLI", .serialized)
struct DatabaseCLITests {
    @Test("db backup writes a consistent copy while a server runs, and refuses to overwrite")
    func backup() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: [:], directory: directory)
        defer { cortex.terminate() }
        let database = directory.file("cortex.db")
        _ = try await IdentityCLITests.run(["tenants", "create", "acme"], database: database)
        #expect(try RawHTTPConnection.request(port: port, path: "/ready")?.status == 200)

        let target = directory.file("backup.db")
        let result = try await IdentityCLITests.run(["db", "backup", target], database: database)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("backup written to \(target)"))

        // The copy is a complete database on its own.
        let copy = try SQLiteConnection(path: target)
        let names = try copy.execute("SELECT name FROM tenants ORDER BY name", []).compactMap { $0.text("name") }
        #expect(names == ["acme", "demo"])
        let version = try copy.execute("SELECT MAX(version) AS v FROM schema_migrations", []).first?.integer("v")
        #expect(version == Int64(SQLiteMigrations.all.last?.version ?? 0))
        copy.close()

        let again = try await IdentityCLITests.run(["db", "backup", target], database: database)
        #expect(again.status == 1)
        #expect(again.stderr.contains("already exists"))
        #expect(try RawHTTPConnection.request(port: port, path: "/ready")?.status == 200, "the server kept serving")
    }
}

@Suite("Database verification", .serialized)
struct DatabaseVerifyTests {
    @Test("db verify passes on a healthy database and names a broken reference")
    func verify() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.file("cortex.db")
        _ = try await IdentityCLITests.run(["tenants", "create", "acme"], database: database)
        _ = try await IdentityCLITests.run(["keys", "create", "--tenant", "acme"], database: database)
        let healthy = try await IdentityCLITests.run(["db", "verify"], database: database)
        #expect(healthy.status == 0)
        #expect(healthy.stdout.contains("database OK (schema version \(SQLiteMigrations.all.last?.version ?? 0))"), "\(healthy.stdout)")

        // Delete the tenant behind Cortex's back: its key now points nowhere.
        let raw = try SQLiteConnection(path: database)
        _ = try raw.execute("PRAGMA foreign_keys = OFF", [])
        _ = try raw.execute("DELETE FROM tenants WHERE name = 'acme'", [])
        raw.close()

        let broken = try await IdentityCLITests.run(["db", "verify"], database: database)
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("DRIFT foreign key: api_keys row 1 points at a missing tenants row"))
    }
}

@Suite("Credits CLI", .serialized)
struct CreditsCLITests {
    @Test("cortex credits grants, shows balance and entries; db verify names a balance changed behind the ledger's back")
    func credits() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.file("cortex.db")
        _ = try await IdentityCLITests.run(["tenants", "create", "acme"], database: database)
        let granted = try await IdentityCLITests.run(["credits", "grant", "acme", "12.5", "--note", "trial"], database: database)
        #expect(granted.status == 0, "\(granted.stderr)")
        #expect(granted.stdout.contains("granted 12.5 to acme; balance 12.5"))
        let removed = try await IdentityCLITests.run(["credits", "deduct", "acme", "2"], database: database)
        #expect(removed.stdout.contains("deducted 2 from acme; balance 10.5"))
        let tooMuch = try await IdentityCLITests.run(["credits", "deduct", "acme", "11"], database: database)
        #expect(tooMuch.status == 1)
        #expect(tooMuch.stderr.contains("cannot deduct 11 credits: the balance is 10.5"))
        let invalid = try await IdentityCLITests.run(["credits", "grant", "acme", "1.0000001"], database: database)
        #expect(invalid.status != 0)
        let nobody = try await IdentityCLITests.run(["credits", "balance", "nobody"], database: database)
        #expect(nobody.status == 1)

        let balance = try await IdentityCLITests.run(["credits", "balance", "acme"], database: database)
        #expect(balance.stdout.contains("balance\t10.5"))
        #expect(balance.stdout.contains("held\t0"))
        let entries = try await IdentityCLITests.run(["credits", "entries", "acme"], database: database)
        let rows = entries.stdout.split(separator: "\n").dropFirst()
        #expect(rows.count == 2)
        #expect(rows.first?.contains("\tgrant\t-2\t") == true)
        #expect(rows.last?.contains("trial") == true)
        #expect(try await IdentityCLITests.run(["db", "verify"], database: database).status == 0)

        let raw = try SQLiteConnection(path: database)
        _ = try raw.execute("UPDATE tenants SET balance_micros = balance_micros + 500000 WHERE name = 'acme'", [])
        raw.close()
        let drifted = try await IdentityCLITests.run(["db", "verify"], database: database)
        #expect(drifted.status == 1)
        #expect(drifted.stdout.contains("DRIFT ledger: tenant 'acme' has balance 11 but its entries sum to 10.5"))
    }
}
