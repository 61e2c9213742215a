import Synchronization

/// Whether the server is draining: set once on SIGTERM/SIGINT, read by `/ready`.
public final class DrainState: Sendable {
    private let draining = Atomic<Bool>(false)

    /// Creates a state that is not draining.
    public init() {}

    /// Whether shutdown has begun.
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Marks the server as draining; returns `false` if it already was.
    @discardableResult
    public func begin() -> Bool {
        !draining.exchange(true, ordering: .relaxed)
    }
}
