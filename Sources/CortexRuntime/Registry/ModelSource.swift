/// Where a model comes from: a name to serve it under and a path on disk.
public struct ModelSource: Sendable, Hashable {
    /// The name clients use in URLs.
    public var name: String
    /// The version to report; `nil` takes the manifest's, else `1`.
    public var version: String?
    /// A model file (`.json` for XGBoost) or a directory holding `model.yaml` or `model.json`.
    public var path: String

    /// Creates a source.
    public init(name: String, version: String? = nil, path: String) {
        self.name = name
        self.version = version
        self.path = path
    }

    /// A source named after its file or directory: `models/lead-scoring/` serves as `lead-scoring`.
    public init(path: String) {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        var last = trimmed.split(separator: "/").last.map(String.init) ?? "model"
        for suffix in [".json", ".onnx"] where last.hasSuffix(suffix) && last.count > suffix.count {
            last.removeLast(suffix.count)
        }
        self.init(name: last, path: path)
    }

    /// A source from the command line or `MODEL_PATH`: `PATH` (named after its file), `NAME=PATH`,
    /// or `NAME:VERSION=PATH`. The `NAME=` form is taken only when what precedes `=` is a model
    /// name (letters, digits, `-`, `_`, `.`), optionally with a version (the same characters).
    public init(specification: String) {
        if let equals = specification.firstIndex(of: "="), equals != specification.startIndex {
            let head = specification[..<equals]
            let path = String(specification[specification.index(after: equals)...])
            let parts = head.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            func isName(_ text: Substring) -> Bool {
                !text.isEmpty && text.count <= 128 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
            }
            if !path.isEmpty, parts.allSatisfy(isName) {
                self.init(name: String(parts[0]), version: parts.count == 2 ? String(parts[1]) : nil, path: path)
                return
            }
        }
        self.init(path: specification)
    }
}
