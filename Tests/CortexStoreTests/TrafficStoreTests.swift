import Foundation
import Testing

@testable import CortexStore

/// The stored traffic settings: versions that only go up, and an audit trail, on both databases.
@Suite("Traffic settings in the store")
struct TrafficStoreTests {
    @Test("nothing stored at first; each save is the next version; changes newest first with who made them", arguments: Backend.allCases)
    func versions(backend: Backend) async throws {
        try await backend.withStore { store in
            #expect(try await store.trafficSettings(endpoint: "/v1/infer") == nil)
            let first = try await store.saveTrafficSettings(endpoint: "/v1/infer", settings: #"{"ab_weight_b":0.1}"#, actor: "cli")
            let second = try await store.saveTrafficSettings(endpoint: "/v1/infer", settings: #"{"ab_weight_b":0.2}"#, actor: "key 7")
            _ = try await store.saveTrafficSettings(endpoint: "/other", settings: "{}", actor: "cli")
            #expect(first.version == 1 && second.version == 2)
            let current = try #require(try await store.trafficSettings(endpoint: "/v1/infer"))
            #expect(current.version == 2 && current.settings == #"{"ab_weight_b":0.2}"#)
            let changes = try await store.trafficChanges(endpoint: "/v1/infer")
            #expect(changes.map(\.version) == [2, 1] && changes.map(\.actor) == ["key 7", "cli"])
            #expect(changes.last?.settings == #"{"ab_weight_b":0.1}"#)
            #expect(try await store.trafficChanges(endpoint: "/v1/infer", limit: 1).count == 1)
        }
    }

    @Test(
        "a save on a version is a compare-and-set: of two replicas deciding on the same version, only the first is stored",
        arguments: Backend.allCases)
    func compareAndSet(backend: Backend) async throws {
        try await backend.withStore { store in
            let first = try await store.saveTrafficSettings(
                endpoint: "/v1/infer", settings: #"{"canary_step":1}"#, actor: "canary", ifVersion: 0)
            #expect(first?.version == 1)
            let late = try await store.saveTrafficSettings(
                endpoint: "/v1/infer", settings: #"{"canary_step":9}"#, actor: "canary", ifVersion: 0)
            #expect(late == nil, "version 0 is gone")
            let next = try await store.saveTrafficSettings(
                endpoint: "/v1/infer", settings: #"{"canary_step":2}"#, actor: "canary", ifVersion: 1)
            #expect(next?.version == 2)
            let stale = try await store.saveTrafficSettings(
                endpoint: "/v1/infer", settings: #"{"canary_step":9}"#, actor: "canary", ifVersion: 1)
            #expect(stale == nil)
            #expect(try await store.trafficSettings(endpoint: "/v1/infer")?.settings == #"{"canary_step":2}"#)
            #expect(try await store.trafficChanges(endpoint: "/v1/infer").map(\.version) == [2, 1], "a refused save leaves no audit line")
        }
    }
}
