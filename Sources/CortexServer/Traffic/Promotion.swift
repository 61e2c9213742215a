public import CortexCore
public import CortexRuntime
public import Logging

/// A promotion: the candidate variant becomes the primary. The candidate's file is loaded afresh
/// and warmed up under the primary's name, then swapped in at once; requests never find the
/// primary missing, and the old primary is freed when its last request finishes.
///
/// `POST /admin/promote` runs it here, then stores the endpoint's `promotions` count one higher;
/// every other replica (``TrafficSync``) runs it when it sees the count go up, as does a replica
/// when `cortex traffic promote` raised it. A restart loads the configured files again
/// (`MODEL_VA_PATH`): point it at the promoted file.
public struct Promotion: Sendable {
    /// The primary's model name (`vA`) and the candidate's (`vB`).
    public var primary: String
    public var candidate: String

    public init(primary: String, candidate: String) {
        self.primary = primary
        self.candidate = candidate
    }

    /// What a promotion did.
    public struct Outcome: Sendable {
        /// The file the primary serves now.
        public var path: String
        /// The file it served before, if it had one.
        public var previousPath: String?
        /// The version it serves now.
        public var version: String
    }

    /// Runs the promotion on this replica (`MODEL_PROMOTED`, or `MODEL_PROMOTE_FAIL` and nothing changes).
    ///
    /// - Throws: 409 `promote_not_possible` when the candidate is not ready; 503 `promote_failed`
    ///   when its file cannot be loaded again (the primary keeps serving).
    @discardableResult
    public func run(on registry: ModelRegistry, logger: Logger) async throws(APIError) -> Outcome {
        guard let entry = registry.entry(named: candidate), case .ready = entry.state else {
            throw APIError(
                status: 409, code: "promote_not_possible",
                message:
                    "\(candidate) is \(registry.entry(named: candidate)?.state.name ?? "not configured"): only a ready \(candidate) can be promoted"
            )
        }
        let previous = registry.entry(named: primary)?.source.path
        let source = ModelSource(name: primary, version: entry.source.version, path: entry.source.path)
        let model: any InferenceModel
        do {
            model = try await registry.replace(with: source)
        } catch {
            logger.error("MODEL_PROMOTE_FAIL", metadata: ["model": "\(primary)", "path": "\(source.path)", "error": "\(error)"])
            throw APIError(
                status: 503, code: "promote_failed",
                message: "\(candidate)'s file could not be loaded as \(primary) (\(primary) keeps serving): \(error)",
                fields: [("retry_after_s", .double(1))])
        }
        logger.notice(
            "MODEL_PROMOTED",
            metadata: [
                "model": "\(primary)", "from": "\(previous ?? "none")", "to": "\(source.path)", "version": "\(model.metadata.version)",
            ])
        return Outcome(path: source.path, previousPath: previous, version: model.metadata.version)
    }
}
