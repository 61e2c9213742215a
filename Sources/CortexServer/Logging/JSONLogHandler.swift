public import CortexCore
public import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes one JSON object per line: `{"ts":..., "level":..., "event":..., "logger":..., ...metadata}`.
///
/// The message is the event name (`REQ_START`, `INFERENCE_SUCCESS`, ...); metadata keys become
/// top-level fields (the logger's first, then the event's, sorted). Numbers and booleans logged with `.stringConvertible` stay JSON
/// numbers and booleans. Each line is built whole and handed to a ``LogOutput``, so lines from
/// concurrent requests never interleave.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: LogOutput
    private let redactor: SecretRedactor

    /// Creates a handler writing to an output shared by every handler of the process.
    ///
    /// - Parameter redactor: The configured secrets, taken out of every line: the last guard
    ///   for text that came from outside (a provider's error) and carries one.
    public init(label: String, level: Logger.Level, output: LogOutput, redactor: SecretRedactor = SecretRedactor(secrets: [])) {
        self.label = label
        self.logLevel = level
        self.output = output
        self.redactor = redactor
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Level names in capitals (`INFO`, `WARNING`, `ERROR`), so the runbooks' `grep ERROR` finds
    /// the error lines and nothing else.
    static let levelNames: [Logger.Level: [UInt8]] = Dictionary(
        uniqueKeysWithValues: Logger.Level.allCases.map { ($0, Array($0.rawValue.uppercased().utf8)) })

    public func log(event: LogEvent) {
        var line: [UInt8] = []
        line.reserveCapacity(320)
        line.append(contentsOf: #"{"ts":""#.utf8)
        Self.appendTimestamp(to: &line)
        line.append(contentsOf: #"","level":""#.utf8)
        line.append(contentsOf: Self.levelNames[event.level] ?? [])
        line.append(contentsOf: #"","event":"#.utf8)
        JSONWriter.appendQuoted(event.message.description, to: &line)
        line.append(contentsOf: #","logger":"#.utf8)
        JSONWriter.appendQuoted(label, to: &line)

        // The handler's metadata (request_id, ...) first, then the event's fields sorted by key;
        // an event field overrides a handler field of the same name.
        let fields = event.metadata ?? [:]
        let provided = metadataProvider?.get() ?? [:]
        for (key, value) in metadata where fields[key] == nil && provided[key] == nil && key != Self.hummingbirdRequestID {
            appendField(key, value, to: &line)
        }
        for (key, value) in provided where fields[key] == nil {
            appendField(key, value, to: &line)
        }
        for key in fields.keys.sorted() {
            if let value = fields[key] { appendField(key, value, to: &line) }
        }
        if let error = event.error, fields["error"] == nil {
            appendField("error", .string("\(error)"), to: &line)
        }
        line.append(contentsOf: "}\n".utf8)

        if !redactor.isEmpty { line = redactor.redact(line) }
        output.append(line, urgent: event.level >= .error)
    }

    /// Hummingbird's own per-request id, which duplicates `request_id`.
    private static let hummingbirdRequestID = "hb.request.id"

    private func appendField(_ key: String, _ value: Logger.Metadata.Value, to line: inout [UInt8]) {
        line.append(UInt8(ascii: ","))
        JSONWriter.appendQuoted(key, to: &line)
        line.append(UInt8(ascii: ":"))
        Self.append(value, to: &line)
    }

    private static func append(_ value: Logger.Metadata.Value, to line: inout [UInt8]) {
        switch value {
        case .string(let text):
            JSONWriter.appendQuoted(text, to: &line)
        case .stringConvertible(let convertible):
            // Numbers and booleans logged as values (`.stringConvertible(200)`) stay JSON numbers
            // and booleans for log queries. Judged by their text: a dynamic cast per field costs more.
            let text = convertible.description
            if text == "true" || text == "false" || isJSONNumber(text) {
                line.append(contentsOf: text.utf8)
            } else {
                JSONWriter.appendQuoted(text, to: &line)
            }
        case .array(let values):
            line.append(UInt8(ascii: "["))
            for (index, element) in values.enumerated() {
                if index > 0 { line.append(UInt8(ascii: ",")) }
                append(element, to: &line)
            }
            line.append(UInt8(ascii: "]"))
        case .dictionary(let dictionary):
            line.append(UInt8(ascii: "{"))
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { line.append(UInt8(ascii: ",")) }
                JSONWriter.appendQuoted(key, to: &line)
                line.append(UInt8(ascii: ":"))
                if let element = dictionary[key] { append(element, to: &line) }
            }
            line.append(UInt8(ascii: "}"))
        }
    }

    /// Whether `text` is a JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    static func isJSONNumber(_ text: String) -> Bool {
        var utf8 = text.utf8[...]
        func digits() -> Int {
            let count = utf8.prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }.count
            utf8 = utf8.dropFirst(count)
            return count
        }
        if utf8.first == UInt8(ascii: "-") { utf8 = utf8.dropFirst() }
        if utf8.first == UInt8(ascii: "0") {
            utf8 = utf8.dropFirst()
        } else if digits() == 0 {
            return false
        }
        if utf8.first == UInt8(ascii: ".") {
            utf8 = utf8.dropFirst()
            if digits() == 0 { return false }
        }
        if utf8.first == UInt8(ascii: "e") || utf8.first == UInt8(ascii: "E") {
            utf8 = utf8.dropFirst()
            if utf8.first == UInt8(ascii: "+") || utf8.first == UInt8(ascii: "-") { utf8 = utf8.dropFirst() }
            if digits() == 0 { return false }
        }
        return utf8.isEmpty
    }

    /// Appends the current UTC time as `2026-11-23T10:48:23.123Z`.
    private static func appendTimestamp(to line: inout [UInt8]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var remaining = value
            while divisor > 0 {
                line.append(UInt8(ascii: "0") + UInt8(remaining / divisor % 10))
                remaining %= divisor
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4)
        line.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2)
        line.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2)
        line.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2)
        line.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2)
        line.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2)
        line.append(UInt8(ascii: "."))
        digits(Int(now.tv_nsec) / 1_000_000, 3)
        line.append(UInt8(ascii: "Z"))
    }
}
