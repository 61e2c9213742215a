public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes one JSON object per line: `{"ts":..., "level":..., "event":..., "logger":..., ...metadata}`.
///
/// The message is the event name (`REQ_START`, `INFERENCE_SUCCESS`, ...); metadata keys become
/// top-level fields. Lines are written with one `write(2)` each, so lines from concurrent
/// requests never interleave.
public struct JSONLogHandler: LogHandler {
    /// Serialises writes so each line is written whole.
    private static let outputLock = Mutex(())

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let fileDescriptor: Int32

    /// Creates a handler writing to a file descriptor (standard output by default).
    public init(label: String, level: Logger.Level, fileDescriptor: Int32 = 1) {
        self.label = label
        self.logLevel = level
        self.fileDescriptor = fileDescriptor
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "{\"ts\":\""
        line.reserveCapacity(256)
        Self.appendTimestamp(to: &line)
        line += "\",\"level\":\""
        line += event.level.rawValue
        line += "\",\"event\":"
        Self.appendQuoted(event.message.description, to: &line)
        line += ",\"logger\":"
        Self.appendQuoted(label, to: &line)
        var merged = metadata
        if let provided = metadataProvider?.get() {
            merged.merge(provided) { _, new in new }
        }
        if let extra = event.metadata {
            merged.merge(extra) { _, new in new }
        }
        // Hummingbird's own per-request id duplicates `request_id`.
        merged["hb.request.id"] = nil
        if let error = event.error, merged["error"] == nil {
            merged["error"] = "\(error)"
        }
        for key in merged.keys.sorted() {
            guard let value = merged[key] else { continue }
            line += ","
            Self.appendQuoted(key, to: &line)
            line += ":"
            Self.append(value, to: &line)
        }
        line += "}\n"
        let bytes = Array(line.utf8)
        Self.outputLock.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                guard let base = buffer.baseAddress else { return }
                var offset = 0
                while offset < buffer.count {
                    let written = write(fileDescriptor, base + offset, buffer.count - offset)
                    if written < 0 && errno == EINTR { continue }
                    if written <= 0 { return }
                    offset += written
                }
            }
        }
    }

    private static func append(_ value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text):
            appendQuoted(text, to: &line)
        case .stringConvertible(let convertible):
            // Numbers and booleans logged as values stay JSON numbers and booleans for log queries.
            switch convertible {
            case let flag as Bool:
                line += flag ? "true" : "false"
            case is any BinaryInteger:
                line += convertible.description
            case let number as Double where number.isFinite:
                line += convertible.description
            default:
                appendQuoted(convertible.description, to: &line)
            }
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                append(element, to: &line)
            }
            line += "]"
        case .dictionary(let dictionary):
            line += "{"
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { line += "," }
                appendQuoted(key, to: &line)
                line += ":"
                if let element = dictionary[key] { append(element, to: &line) }
            }
            line += "}"
        }
    }

    static func appendQuoted(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case let control where control.value < 0x20:
                let hex = String(control.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    /// Appends the current UTC time as `2026-11-23T10:48:23.123Z`.
    private static func appendTimestamp(to line: inout String) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        line += pad(Int(parts.tm_year) + 1900, 4) + "-" + pad(Int(parts.tm_mon) + 1, 2) + "-" + pad(Int(parts.tm_mday), 2)
        line += "T" + pad(Int(parts.tm_hour), 2) + ":" + pad(Int(parts.tm_min), 2) + ":" + pad(Int(parts.tm_sec), 2)
        line += "." + pad(Int(now.tv_nsec) / 1_000_000, 3) + "Z"
    }
}
