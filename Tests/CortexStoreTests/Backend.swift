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
            try await StateStore.withSQLite(path: path, logger: Logger(label: "test"), body)
        case .postgres:
            try await PostgresTestServer.withDatabase { url in
                try await StateStore.withPostgres(url: url, logger: Logger(label: "test"), body)
            }
        }
    }
}
