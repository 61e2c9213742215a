public import CortexCore
public import CortexRuntime
import CortexStore
import Dispatch
public import Logging
public import ServiceLifecycle

/// Shadow traffic (`SHADOW_ENABLED`): a copy of each request the split serves, run on the other
/// variant once the primary's answer is ready, and the two answers compared.
///
/// A copy is never billed and never counted against a rate limit (it never goes through the
/// pipeline's limit and hold), and never slows the primary: the primary only puts it in a bounded
/// queue (`SHADOW_QUEUE_DEPTH`; when full the copy is dropped and counted) and answers; one
/// worker, on a thread of its own at a lower priority, reads the copy's input for the shadow model
/// (an image is decoded again, for the shadow's size and colour) and runs it. Nothing of the
/// shadow reaches the client: its outcome is in `shadow_requests_total`, its comparison in
/// `shadow_agreement_ratio` and `shadow_comparisons_total` (classifiers: the most probable class)
/// or `shadow_absolute_difference` (regressors and scores).
public struct ShadowTraffic: Service {
    /// One request to run again on the shadow model.
    public struct Copy: Sendable {
        public var endpoint: String
        /// The variant that answered.
        public var primary: String
        /// The variant that runs the copy.
        public var shadow: any InferenceModel
        /// The primary's outputs, compared with the shadow's.
        public var primaryOutputs: [Tensor]
        /// Reads the request into `shadow`'s inputs (the route's own parsing, again).
        public var inputs: @Sendable (any InferenceModel) throws -> [Tensor]
        /// The request's logger (its request id).
        public var logger: Logger

        public init(
            endpoint: String, primary: String, shadow: any InferenceModel, primaryOutputs: [Tensor],
            inputs: @escaping @Sendable (any InferenceModel) throws -> [Tensor], logger: Logger
        ) {
            self.endpoint = endpoint
            self.primary = primary
            self.shadow = shadow
            self.primaryOutputs = primaryOutputs
            self.inputs = inputs
            self.logger = logger
        }
    }

    let metrics: TrafficMetrics
    private let copies: AsyncStream<Copy>
    private let sink: AsyncStream<Copy>.Continuation

    /// A queue of at most `depth` copies waiting (beyond the one running).
    public init(depth: Int, metrics: TrafficMetrics) {
        self.metrics = metrics
        (copies, sink) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(max(1, depth)))
    }

    /// Queues `copy`, or drops and counts it when the queue is full. Never waits.
    public func submit(_ copy: Copy) {
        switch sink.yield(copy) {
        case .enqueued: break
        case .dropped, .terminated: metrics.shadow(endpoint: copy.endpoint, shadow: copy.shadow.metadata.name, outcome: .dropped)
        @unknown default: break
        }
    }

    /// Runs the copies, one at a time, until shutdown (the copies still waiting are dropped).
    public func run() async {
        let executor = ThreadExecutor(name: "cortex-shadow", scheduling: .idle)
        defer { executor.shutdown() }
        await withTaskExecutorPreference(executor) {
            try? await cancelWhenGracefulShutdown {
                for await copy in copies { await run(copy) }
            }
        }
        sink.finish()
    }

    /// Runs one copy and records how it compares.
    func run(_ copy: Copy) async {
        let name = copy.shadow.metadata.name
        let outputs: [Tensor]
        do {
            let inputs = try copy.shadow.metadata.validate(inputs: try copy.inputs(copy.shadow))
            outputs = try await copy.shadow.predict(inputs).outputs
        } catch {
            metrics.shadow(endpoint: copy.endpoint, shadow: name, outcome: .failed)
            copy.logger.warning("SHADOW_FAIL", metadata: ["model": "\(name)", "primary": "\(copy.primary)", "error": "\(error)"])
            return
        }
        guard let comparison = ShadowComparison(primary: copy.primaryOutputs, shadow: outputs) else {
            metrics.shadow(endpoint: copy.endpoint, shadow: name, outcome: .incomparable)
            return
        }
        metrics.shadow(endpoint: copy.endpoint, shadow: name, outcome: .compared)
        switch comparison {
        case .topClass(let agreed, let rows):
            metrics.agreement(endpoint: copy.endpoint, primary: copy.primary, shadow: name, agreed: agreed, rows: rows)
        case .differences(let values):
            metrics.differences(endpoint: copy.endpoint, primary: copy.primary, shadow: name, values)
        }
    }
}

/// How two answers to the same input compare, from their first outputs.
public enum ShadowComparison: Sendable, Equatable {
    /// A classifier's (more than one value per row): the rows whose most probable class agreed.
    case topClass(agreed: Int, rows: Int)
    /// A regressor's or scorer's (one value per row): each absolute difference.
    case differences([Double])

    /// The comparison of the first outputs; `nil` when their shapes or types differ.
    public init?(primary: [Tensor], shadow: [Tensor]) {
        guard let left = primary.first, let right = shadow.first, left.shape == right.shape,
            let a = Self.numbers(left.data), let b = Self.numbers(right.data), a.count == b.count, !a.isEmpty
        else { return nil }
        let dimensions = left.shape.dimensions
        let width = dimensions.count >= 2 ? dimensions[dimensions.count - 1] : 1
        if width > 1, a.count % width == 0 {
            let rows = a.count / width
            var agreed = 0
            for row in 0..<rows {
                let range = row * width..<(row + 1) * width
                if Self.argmax(a[range]) == Self.argmax(b[range]) { agreed += 1 }
            }
            self = .topClass(agreed: agreed, rows: rows)
        } else {
            self = .differences(zip(a, b).map { abs($0 - $1) })
        }
    }

    static func numbers(_ data: TensorData) -> [Double]? {
        switch data {
        case .float(let values): values
        case .int(let values): values.map(Double.init)
        case .bool(let values): values.map { $0 ? 1 : 0 }
        case .bytes: nil
        }
    }

    /// The index of the largest value; the first on a tie.
    static func argmax(_ values: ArraySlice<Double>) -> Int {
        var best = values.startIndex
        for index in values.indices where values[index] > values[best] { best = index }
        return best - values.startIndex
    }
}
