public import Foundation

/// One endpoint's traffic settings as stored: a JSON document and its version, which every
/// replica compares with the one it applies.
public struct TrafficRecord: Sendable, Equatable {
    public var endpoint: String
    /// 1 for the first change, one more for each after it.
    public var version: Int64
    /// The settings, as the admin API writes them (`{"ab_weight_a": 0.9, ...}`).
    public var settings: String
    public var changedAt: Date
    /// Who made the change: `admin token`, `key 12`, `cli`.
    public var actor: String?
}

extension StateStore {
    /// The stored settings of `endpoint`, `nil` while none were ever changed (the environment's apply).
    public func trafficSettings(endpoint: String) async throws -> TrafficRecord? {
        try await database.query(
            "SELECT endpoint, version, settings, changed_at_ms FROM traffic_settings WHERE endpoint = $1", [.text(endpoint)]
        ).first.map { Self.traffic(from: $0, actor: nil) }
    }

    /// Stores `settings` as `endpoint`'s next version, durably, with the change in the audit trail.
    /// Replicas saving at once each get their own version; the last one stored is the one in force.
    public func saveTrafficSettings(endpoint: String, settings: String, actor: String, at time: Date = Date()) async throws
        -> TrafficRecord
    {
        guard let record = try await save(endpoint: endpoint, settings: settings, actor: actor, ifVersion: nil, at: time) else {
            throw StoreFailure(reason: "the traffic settings were not stored")
        }
        return record
    }

    /// Stores `settings` as `endpoint`'s next version only if the stored version is still
    /// `version` (0: never stored): a compare-and-set, so of two replicas deciding on the same
    /// version only the first is stored.
    ///
    /// - Returns: The record stored, or `nil` when the stored version had moved on.
    public func saveTrafficSettings(endpoint: String, settings: String, actor: String, ifVersion version: Int64, at time: Date = Date())
        async throws -> TrafficRecord?
    {
        try await save(endpoint: endpoint, settings: settings, actor: actor, ifVersion: version, at: time)
    }

    private func save(endpoint: String, settings: String, actor: String, ifVersion expected: Int64?, at time: Date) async throws
        -> TrafficRecord?
    {
        let milliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded())
        return try await database.transaction(durable: true) { transaction in
            let rows: [SQLRow]
            switch expected {
            case nil:
                rows = try await transaction.query(
                    """
                    INSERT INTO traffic_settings (endpoint, version, settings, changed_at_ms) VALUES ($1, 1, $2, $3)
                    ON CONFLICT (endpoint) DO UPDATE
                    SET version = traffic_settings.version + 1, settings = excluded.settings, changed_at_ms = excluded.changed_at_ms
                    RETURNING version
                    """,
                    [.text(endpoint), .text(settings), .integer(milliseconds)]
                )
            case 0?:
                rows = try await transaction.query(
                    """
                    INSERT INTO traffic_settings (endpoint, version, settings, changed_at_ms) VALUES ($1, 1, $2, $3)
                    ON CONFLICT (endpoint) DO NOTHING RETURNING version
                    """,
                    [.text(endpoint), .text(settings), .integer(milliseconds)]
                )
            case let version?:
                rows = try await transaction.query(
                    """
                    UPDATE traffic_settings SET version = version + 1, settings = $2, changed_at_ms = $3
                    WHERE endpoint = $1 AND version = $4 RETURNING version
                    """,
                    [.text(endpoint), .text(settings), .integer(milliseconds), .integer(version)]
                )
            }
            guard let version = rows.first?.integer("version") else { return nil }
            _ = try await transaction.query(
                "INSERT INTO traffic_changes (endpoint, version, settings, actor, changed_at_ms) VALUES ($1, $2, $3, $4, $5)",
                [.text(endpoint), .integer(version), .text(settings), .text(actor), .integer(milliseconds)]
            )
            return TrafficRecord(
                endpoint: endpoint, version: version, settings: settings,
                changedAt: Date(timeIntervalSince1970: Double(milliseconds) / 1000), actor: actor)
        }
    }

    /// `endpoint`'s changes, newest first: each version's settings, who stored it, and when.
    public func trafficChanges(endpoint: String, limit: Int = 100) async throws -> [TrafficRecord] {
        try await database.query(
            """
            SELECT endpoint, version, settings, actor, changed_at_ms FROM traffic_changes
            WHERE endpoint = $1 ORDER BY version DESC LIMIT $2
            """,
            [.text(endpoint), .integer(Int64(max(1, min(limit, 10_000))))]
        ).map { Self.traffic(from: $0, actor: $0.text("actor")) }
    }

    private static func traffic(from row: SQLRow, actor: String?) -> TrafficRecord {
        TrafficRecord(
            endpoint: row.text("endpoint") ?? "", version: row.integer("version") ?? 0, settings: row.text("settings") ?? "{}",
            changedAt: Date(timeIntervalSince1970: Double(row.integer("changed_at_ms") ?? 0) / 1000), actor: actor)
    }
}
