/// Builds JSON text directly, inserting commas itself; used for hot-path and error responses
/// where going through `Encodable` costs more than the work it describes.
///
/// ```swift
/// var json = JSONWriter()
/// json.beginObject(); json.key("status"); json.string("ok"); json.endObject()
/// json.text // {"status":"ok"}
/// ```
package struct JSONWriter {
    package private(set) var text = ""
    /// Whether the next value in the current container needs a comma before it.
    private var needsComma = false

    package init(capacity: Int = 128) {
        text.reserveCapacity(capacity)
    }

    package mutating func beginObject() {
        separate()
        text += "{"
        needsComma = false
    }

    package mutating func endObject() {
        text += "}"
        needsComma = true
    }

    package mutating func beginArray() {
        separate()
        text += "["
        needsComma = false
    }

    package mutating func endArray() {
        text += "]"
        needsComma = true
    }

    /// Writes an object key; the next call writes its value.
    package mutating func key(_ name: String) {
        separate()
        appendQuoted(name)
        text += ":"
        needsComma = false
    }

    /// Writes `"key":"value"`.
    package mutating func member(_ key: String, _ value: String) {
        self.key(key)
        string(value)
    }

    /// Writes `"key":true` or `"key":false`.
    package mutating func member(_ key: String, _ value: Bool) {
        self.key(key)
        bool(value)
    }

    /// Writes `"key":123`.
    package mutating func member(_ key: String, _ value: Double) {
        self.key(key)
        number(value)
    }

    package mutating func member(_ key: String, _ value: Int) {
        self.key(key)
        number(value)
    }

    package mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
        needsComma = true
    }

    private mutating func appendQuoted(_ value: String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(value.utf8.count + 2)
        Self.appendQuoted(value, to: &bytes)
        text += String(decoding: bytes, as: UTF8.self)
    }

    package mutating func bool(_ value: Bool) {
        raw(value ? "true" : "false")
    }

    package mutating func null() {
        raw("null")
    }

    /// Writes a number; NaN and infinities, which JSON cannot hold, become `null`.
    package mutating func number(_ value: Double) {
        guard value.isFinite else { return null() }
        if value == value.rounded(), abs(value) < 1e15 {
            raw(String(Int64(value)))
        } else {
            raw(String(value))
        }
    }

    /// Writes a 32-bit float with the shortest text that reads back as the same `Float`.
    package mutating func number(_ value: Float) {
        guard value.isFinite else { return null() }
        if value == value.rounded(), abs(value) < 1e7 {
            raw(String(Int32(value)))
        } else {
            raw(String(value))
        }
    }

    package mutating func number(_ value: Int) {
        raw(String(value))
    }

    /// Writes a parsed value back as JSON text (numbers in their shortest form).
    package mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .number(let number): self.number(number)
        case .string(let text): string(text)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let members):
            beginObject()
            for member in members {
                key(member.key)
                self.value(member.value)
            }
            endObject()
        }
    }

    /// A parsed value as JSON text.
    package static func text(of value: JSONValue) -> String {
        var json = JSONWriter()
        json.value(value)
        return json.text
    }

    /// Writes pre-formatted JSON.
    package mutating func raw(_ json: String) {
        separate()
        text += json
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { text += "," }
    }

    /// Appends `text` as a JSON string literal, escaping quotes, backslashes and control characters.
    package static func appendQuoted(_ text: String, to line: inout [UInt8]) {
        line.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\""): line.append(contentsOf: #"\""#.utf8)
                case UInt8(ascii: "\\"): line.append(contentsOf: #"\\"#.utf8)
                case UInt8(ascii: "\n"): line.append(contentsOf: #"\n"#.utf8)
                case UInt8(ascii: "\r"): line.append(contentsOf: #"\r"#.utf8)
                case UInt8(ascii: "\t"): line.append(contentsOf: #"\t"#.utf8)
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    line.append(contentsOf: #"\u00"#.utf8)
                    line.append(hex[Int(byte >> 4)])
                    line.append(hex[Int(byte & 0xF)])
                default:
                    line.append(byte)
                }
            }
        }
        line.append(UInt8(ascii: "\""))
    }

}
