import Foundation

/// Paths of files in the repository, found from this source file.
enum Fixture {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ relative: String) -> String {
        packageRoot.appendingPathComponent(relative).path
    }

    /// xgboost's own predictions on held-out rows, written by `scripts/train_models.py`.
    struct Expected: Decodable {
        var objective: String
        var feature_names: [String]
        var rows: [[Double?]]
        var predictions: [Float]

        /// Rows flattened row-major, `nil` (missing) as NaN.
        var features: [Float] {
            rows.flatMap { $0.map { $0.map(Float.init) ?? .nan } }
        }
    }

    static func expected(_ relative: String) throws -> Expected {
        let data = try Data(contentsOf: URL(fileURLWithPath: path(relative)))
        return try JSONDecoder().decode(Expected.self, from: data)
    }
}
