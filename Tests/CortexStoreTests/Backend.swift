import CortexTestSupport
import Foundation
import Logging

@testable import CortexStore

/// The databases every store test runs on.
enum Backend: String, CaseIterable, CustomStringConvertible, Sendable {
    case sqlite
    case postgres

    var description: String { rawValue }

    /// Runs `body` on a new, empty store of this kind, then closes and removes it.
    func withStore(_ body: (StateStore) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            let path = SQLiteStoreTests.temporaryPath()
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            try await Self.run(try await StateStore.openSQLite(path: path, logger: Logger(label: "test")), body)
        case .postgres:
            try await PostgresTestServer.withDatabase { url in
                try await Self.run(try await StateStore.openPostgres(url: url, logger: Logger(label: "test")), body)
            }
        }
    }

    private static func run(_ store: StateStore, _ body: (StateStore) async throws -> Void) async throws {
        do {
            try await body(store)
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }
}
