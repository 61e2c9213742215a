public import Metrics
import Synchronization

/// What the connection guard counts: `http_connections_open`, `http_connections_refused_total`
/// (past `MAX_CONNECTIONS`) and `http_request_timeouts_total{stage}` (`header`, `body`: a 408 or,
/// once an answer had begun, a close).
public final class ConnectionMetrics: Sendable {
    private let open: Gauge
    private let openCount = Atomic<Int>(0)
    private let refused: Counter
    private let headerTimeouts: Counter
    private let bodyTimeouts: Counter

    public init(factory: any MetricsFactory) {
        open = Gauge(label: "http_connections_open", factory: factory)
        refused = Counter(label: "http_connections_refused_total", factory: factory)
        headerTimeouts = Counter(label: "http_request_timeouts_total", dimensions: [("stage", "header")], factory: factory)
        bodyTimeouts = Counter(label: "http_request_timeouts_total", dimensions: [("stage", "body")], factory: factory)
        open.record(0)
    }

    func opened(admitted: Bool) {
        guard admitted else {
            refused.increment()
            return
        }
        open.record(openCount.add(1, ordering: .relaxed).newValue)
    }

    func closed(admitted: Bool) {
        guard admitted else { return }
        open.record(openCount.subtract(1, ordering: .relaxed).newValue)
    }

    func timedOut(_ stage: ConnectionTimeouts<ContinuousClock.Instant>.Stage) {
        switch stage {
        case .head: headerTimeouts.increment()
        case .body: bodyTimeouts.increment()
        case .idle, .waiting, .closed: break
        }
    }
}
