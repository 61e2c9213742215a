public import CortexCore
public import CortexStore
import Foundation
import Synchronization

/// Turns a presented API key into a ``Principal``, with a short-lived cache so a request
/// costs a hash and a dictionary look-up, not a database query.
///
/// Cached entries expire after ``Configuration/cacheTTL``; keys revoked or rotated through this
/// process are dropped from the cache at once, and other replicas see it within the TTL.
///
/// Keys that are not found are remembered as well, for the same time, so a client retrying a
/// wrong key in a loop costs no database read per request. They are kept apart (and capped on
/// their own), so a flood of random keys never pushes real keys out of the cache.
public final class Authenticator: Sendable {
    /// How keys are required and cached.
    public struct Configuration: Sendable, Equatable {
        /// Whether routes that bill or infer refuse requests without a key (`REQUIRE_API_KEY`).
        public var requireAPIKey = true
        /// How long a found key is trusted before it is read again.
        public var cacheTTL: Duration = .seconds(5)

        /// Creates the default configuration.
        public init() {}
    }

    private struct Entry {
        var principal: Principal
        var expires: ContinuousClock.Instant
    }

    let configuration: Configuration
    private let store: any IdentityStore
    private let cache = Mutex<[String: Entry]>([:])
    /// Hashes of keys that were not found, until when.
    private let misses = Mutex<[String: ContinuousClock.Instant]>([:])
    /// Most entries kept; past it the cache is cleared rather than grown.
    private static let maximumEntries = 100_000
    /// Most unknown keys remembered; past it they are forgotten rather than grown.
    private static let maximumMisses = 10_000

    /// Creates an authenticator over an identity store.
    public init(store: any IdentityStore, configuration: Configuration) {
        self.store = store
        self.configuration = configuration
    }

    /// The principal for a presented key, or `nil` when the key is unknown, revoked or expired.
    ///
    /// All failures look the same to the caller, so responses never reveal whether a key exists.
    public func principal(forKey key: String) async throws -> Principal? {
        guard APIKey.isPlausible(key[...]) else { return nil }
        let hash = APIKeyHash.of(key)
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0[hash] }), cached.expires > now {
            return cached.principal.key.isActive(at: Date()) ? cached.principal : nil
        }
        if let until = misses.withLock({ $0[hash] }), until > now { return nil }
        guard let record = try await store.record(forKey: key), let tenant = try await store.tenant(id: record.tenantID) else {
            if configuration.cacheTTL > .zero {
                misses.withLock { misses in
                    if misses.count >= Self.maximumMisses { misses.removeAll(keepingCapacity: true) }
                    misses[hash] = now + configuration.cacheTTL
                }
            }
            return nil
        }
        let principal = Principal(tenant: tenant, key: record)
        cache.withLock { cache in
            if cache.count >= Self.maximumEntries { cache.removeAll(keepingCapacity: true) }
            cache[hash] = Entry(principal: principal, expires: now + configuration.cacheTTL)
        }
        return record.isActive(at: Date()) ? principal : nil
    }

    /// Forgets every cached key, after keys were revoked, rotated or reloaded.
    public func invalidate() {
        cache.withLock { $0.removeAll() }
        misses.withLock { $0.removeAll() }
    }
}
