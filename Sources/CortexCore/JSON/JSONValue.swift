/// A parsed JSON document.
///
/// Cortex parses request bodies with ``JSONParser`` into this tree rather than through
/// `Decodable`: it is several times faster on the inference path, and the mapping code
/// can say exactly which field is wrong.
package enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Members in document order; later duplicates win in ``subscript(_:)``.
    case object([(key: String, value: JSONValue)])

    package static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.map(\.key) == b.map(\.key) && a.map(\.value) == b.map(\.value)
        default: false
        }
    }

    /// The member of an object with that key, if any.
    package subscript(_ key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }

    /// A name for error messages: "a number", "an object", ...
    package var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

extension JSONValue {
    /// The text of a string, else `nil`.
    package var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// A number that is a whole integer, else `nil`.
    package var intValue: Int? {
        if case .number(let number) = self { return Int(exactly: number) }
        return nil
    }

    /// The flag of a boolean, else `nil`.
    package var boolValue: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }

    /// The elements of an array, else `nil`.
    package var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }
}
