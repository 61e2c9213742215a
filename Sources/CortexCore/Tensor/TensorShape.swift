/// A tensor shape whose dimensions may be dynamic (`-1`) in a signature.
public struct TensorShape: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The dimensions; `-1` stands for "any size" in a signature.
    public var dimensions: [Int]

    /// Creates a shape from its dimensions.
    public init(_ dimensions: [Int]) {
        self.dimensions = dimensions
    }

    /// Number of elements a concrete shape holds, `nil` when a dimension is dynamic, negative or overflows.
    public var elementCount: Int? {
        var count = 1
        for dimension in dimensions {
            guard dimension >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// Whether a concrete shape fits this (possibly dynamic) shape.
    public func accepts(_ concrete: TensorShape) -> Bool {
        guard dimensions.count == concrete.dimensions.count else { return false }
        for (expected, actual) in zip(dimensions, concrete.dimensions) where expected >= 0 && expected != actual {
            return false
        }
        return true
    }

    public var description: String {
        "[" + dimensions.map { $0 < 0 ? "-1" : String($0) }.joined(separator: ", ") + "]"
    }

    public init(from decoder: any Decoder) throws {
        self.dimensions = try decoder.singleValueContainer().decode([Int].self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(dimensions)
    }
}
