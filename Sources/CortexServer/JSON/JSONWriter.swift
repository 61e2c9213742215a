/// Builds JSON text directly, inserting commas itself; used for hot-path and error responses
/// where going through `Encodable` costs more than the work it describes.
///
/// ```swift
/// var json = JSONWriter()
/// json.beginObject(); json.key("status"); json.string("ok"); json.endObject()
/// json.text // {"status":"ok"}
/// ```
struct JSONWriter {
    private(set) var text = ""
    /// Whether the next value in the current container needs a comma before it.
    private var needsComma = false

    init(capacity: Int = 128) {
        text.reserveCapacity(capacity)
    }

    mutating func beginObject() {
        separate()
        text += "{"
        needsComma = false
    }

    mutating func endObject() {
        text += "}"
        needsComma = true
    }

    mutating func beginArray() {
        separate()
        text += "["
        needsComma = false
    }

    mutating func endArray() {
        text += "]"
        needsComma = true
    }

    /// Writes an object key; the next call writes its value.
    mutating func key(_ name: String) {
        separate()
        appendQuoted(name)
        text += ":"
        needsComma = false
    }

    /// Writes `"key":"value"`.
    mutating func member(_ key: String, _ value: String) {
        self.key(key)
        string(value)
    }

    /// Writes `"key":true` or `"key":false`.
    mutating func member(_ key: String, _ value: Bool) {
        self.key(key)
        bool(value)
    }

    /// Writes `"key":123`.
    mutating func member(_ key: String, _ value: Int) {
        self.key(key)
        number(value)
    }

    mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
        needsComma = true
    }

    private mutating func appendQuoted(_ value: String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(value.utf8.count + 2)
        JSONLogHandler.appendQuoted(value, to: &bytes)
        text += String(decoding: bytes, as: UTF8.self)
    }

    mutating func bool(_ value: Bool) {
        raw(value ? "true" : "false")
    }

    mutating func null() {
        raw("null")
    }

    /// Writes a number; NaN and infinities, which JSON cannot hold, become `null`.
    mutating func number(_ value: Double) {
        guard value.isFinite else { return null() }
        if value == value.rounded(), abs(value) < 1e15 {
            raw(String(Int64(value)))
        } else {
            raw(String(value))
        }
    }

    /// Writes a 32-bit float with the shortest text that reads back as the same `Float`.
    mutating func number(_ value: Float) {
        guard value.isFinite else { return null() }
        if value == value.rounded(), abs(value) < 1e7 {
            raw(String(Int32(value)))
        } else {
            raw(String(value))
        }
    }

    mutating func number(_ value: Int) {
        raw(String(value))
    }

    /// Writes pre-formatted JSON.
    mutating func raw(_ json: String) {
        separate()
        text += json
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { text += "," }
    }
}
