import CortexCore

/// Reading a request's fields with errors that name the field, e.g. `'inputs[0].shape'`.
extension JSONValue {
    /// The members of an object, or a 400 naming `path`.
    func object(at path: String) throws(APIError) -> [(key: String, value: JSONValue)] {
        guard case .object(let members) = self else { throw Self.wrongType(path, expected: "an object", got: self) }
        return members
    }

    /// A required member of an object.
    func required(_ key: String, in path: String) throws(APIError) -> JSONValue {
        guard let value = self[key] else {
            throw APIError.invalidJSON(path.isEmpty ? "missing field '\(key)'" : "missing field '\(key)' in '\(path)'")
        }
        return value
    }

    func array(at path: String) throws(APIError) -> [JSONValue] {
        guard case .array(let elements) = self else { throw Self.wrongType(path, expected: "an array", got: self) }
        return elements
    }

    func bool(at path: String) throws(APIError) -> Bool {
        guard case .bool(let flag) = self else { throw Self.wrongType(path, expected: "true or false", got: self) }
        return flag
    }

    func string(at path: String) throws(APIError) -> String {
        guard case .string(let text) = self else { throw Self.wrongType(path, expected: "a string", got: self) }
        return text
    }

    /// An array of integers, such as a shape.
    func integers(at path: String) throws(APIError) -> [Int] {
        var result: [Int] = []
        for element in try array(at: path) {
            guard case .number(let number) = element, let integer = Int(exactly: number) else {
                throw Self.wrongType(path, expected: "an array of integers", got: element)
            }
            result.append(integer)
        }
        return result
    }

    static func wrongType(_ path: String, expected: String, got value: JSONValue) -> APIError {
        APIError.invalidJSON("'\(path.isEmpty ? "body" : path)' has the wrong type: expected \(expected), got \(value.kind)")
    }
}
