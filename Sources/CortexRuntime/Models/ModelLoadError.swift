/// Why a model could not be loaded; the message names the file and, where known, the field.
public struct ModelLoadError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file or directory that failed.
    public var path: String
    /// The JSON path of the offending field, e.g. `learner.objective.name`, when known.
    public var field: String?
    /// What is wrong.
    public var reason: String

    /// Creates a load error.
    public init(path: String, field: String? = nil, reason: String) {
        self.path = path
        self.field = field
        self.reason = reason
    }

    public var description: String {
        if let field {
            return "\(path): field '\(field)': \(reason)"
        }
        return "\(path): \(reason)"
    }
}
