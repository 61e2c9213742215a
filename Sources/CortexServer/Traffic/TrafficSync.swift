import CortexCore
public import CortexStore
import Foundation
public import Logging
import NIOCore
public import ServiceLifecycle

/// Applies the stored traffic settings: once at start (so a restart keeps the last change), then
/// every ``interval``, so a change made on one replica (`POST /admin/config`, `cortex traffic set`)
/// reaches the others. One small read per interval per replica.
public struct TrafficSync: Service {
    /// How often the stored version is read.
    public static let interval: Duration = .seconds(2)

    let control: TrafficControl
    let store: StateStore
    /// The configured switches the stored ones apply on top of (`STICKY_COOKIE` stays configured).
    let base: CortexConfiguration.Traffic
    let logger: Logger

    public init(control: TrafficControl, store: StateStore, base: CortexConfiguration.Traffic, logger: Logger) {
        self.control = control
        self.store = store
        self.base = base
        self.logger = logger
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: Self.interval)
                    await poll()
                }
            }
        } catch is CancellationError {}
    }

    /// Reads the stored version and installs it when it is newer than the one applied.
    public func poll() async {
        let record: TrafficRecord?
        do {
            record = try await store.trafficSettings(endpoint: TrafficControl.endpoint)
        } catch {
            logger.warning("TRAFFIC_SYNC_FAIL", metadata: ["error": "\(error)"])
            return
        }
        guard let record, record.version > control.version else { return }
        do {
            let change = try TrafficControl.Change(json: try JSONValue.parse(ByteBuffer(string: record.settings)))
            let settings = try TrafficControl.applying(change, to: base)
            if control.install(settings, version: record.version) != nil {
                logger.notice(
                    "TRAFFIC_CONFIG_APPLIED",
                    metadata: ["version": "\(record.version)", "settings": "vA=\(settings.weightA) vB=\(settings.weightB)"])
            }
        } catch {
            logger.error("TRAFFIC_SYNC_FAIL", metadata: ["version": "\(record.version)", "error": "stored settings refused: \(error)"])
        }
    }
}
