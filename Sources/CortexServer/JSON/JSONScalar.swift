/// One leaf value of a JSON document.
enum JSONScalar: Sendable, Equatable, Decodable {
    case number(Double)
    case bool(Bool)
    case string(String)
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else {
            throw DecodingError.typeMismatch(
                JSONScalar.self,
                .init(codingPath: decoder.codingPath, debugDescription: "expected a number, boolean, string or null")
            )
        }
    }

    /// A name for error messages.
    var kind: String {
        switch self {
        case .number: "number"
        case .bool: "boolean"
        case .string: "string"
        case .null: "null"
        }
    }
}

/// The `data` of an Open Inference Protocol tensor: nested arrays flattened row-major.
struct FlattenedJSONArray: Decodable {
    var values: [JSONScalar]
    /// Deepest nesting seen, to refuse absurd documents.
    static let maximumDepth = 32

    init(from decoder: any Decoder) throws {
        var values: [JSONScalar] = []
        var container = try decoder.unkeyedContainer()
        try Self.flatten(&container, into: &values, depth: 1)
        self.values = values
    }

    private static func flatten(_ container: inout any UnkeyedDecodingContainer, into values: inout [JSONScalar], depth: Int) throws {
        guard depth <= maximumDepth else {
            throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath, debugDescription: "arrays nested too deeply"))
        }
        if let count = container.count { values.reserveCapacity(values.count + count) }
        while !container.isAtEnd {
            if var nested = try? container.nestedUnkeyedContainer() {
                try flatten(&nested, into: &values, depth: depth + 1)
            } else {
                values.append(try container.decode(JSONScalar.self))
            }
        }
    }
}
