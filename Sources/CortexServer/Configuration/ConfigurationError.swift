import CortexCore

/// A setting that cannot be used; the message names the key and the accepted values.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The setting's name as the operator wrote it: an environment variable or a YAML path.
    public var key: String
    /// The value given, if any.
    public var value: String?
    /// What is accepted.
    public var expected: String

    /// Creates a configuration error.
    public init(key: String, value: String?, expected: String) {
        self.key = key
        self.value = value
        self.expected = expected
    }

    public var description: String {
        if let value {
            return "invalid setting \(key)=\"\(RedactedURL.redacting(value))\": expected \(expected)"
        }
        return "invalid setting \(key): expected \(expected)"
    }
}
