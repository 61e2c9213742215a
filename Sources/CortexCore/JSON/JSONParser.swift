/// A strict RFC 8259 JSON parser over UTF-8 bytes.
///
/// Rejects what JSON does not allow (`NaN`, `Infinity`, leading zeros, trailing commas,
/// unescaped control characters, lone surrogates), numbers that overflow a `Double`, and
/// nesting deeper than ``maximumDepth``.
package struct JSONParser {
    /// Why a document was refused, with the byte offset where it went wrong.
    package struct Failure: Error, Equatable {
        package var offset: Int
        package var reason: String
    }

    /// Deepest nesting of arrays and objects accepted.
    package static let maximumDepth = 64

    /// Parses a whole document; anything but whitespace after the value is an error.
    package static func parse(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> JSONValue {
        try document(bytes, recordsMembers: false).value
    }

    /// Parses a whole document, and for an object the text of each top-level member's value, in
    /// document order: what a proxy sends on byte for byte (a 64-bit `seed` that a `Double` would
    /// round, numbers as the client wrote them).
    package static func parseKeepingMemberText(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> (
        value: JSONValue, memberText: [String]
    ) {
        let (value, parser) = try document(bytes, recordsMembers: true)
        return (value, parser.memberSpans.map { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[$0]), as: UTF8.self) })
    }

    /// Parses a whole document; anything but whitespace after the value is an error.
    private static func document(_ bytes: UnsafeRawBufferPointer, recordsMembers: Bool) throws(Failure) -> (
        value: JSONValue, parser: JSONParser
    ) {
        var parser = JSONParser(bytes: bytes)
        parser.recordsMembers = recordsMembers
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.offset == bytes.count else {
            throw Failure(offset: parser.offset, reason: "unexpected data after the JSON value")
        }
        return (value, parser)
    }

    /// Parses a document held in an array or string's UTF-8.
    package static func parse(_ bytes: some Collection<UInt8>) throws(Failure) -> JSONValue {
        let array = Array(bytes)
        let result = array.withUnsafeBytes { buffer in Result { () throws(Failure) in try parse(buffer) } }
        return try result.get()
    }

    private let bytes: UnsafeRawBufferPointer
    private var offset = 0
    /// Whether to record where the top-level object's member values lie (``parseKeepingMemberText(_:)``).
    private var recordsMembers = false
    private var memberSpans: [Range<Int>] = []

    private init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    private var current: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    private func fail(_ reason: String) -> Failure {
        Failure(offset: offset, reason: reason)
    }

    private mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(Failure) -> JSONValue {
        guard let byte = current else { throw fail("unexpected end of JSON") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character '\(Unicode.Scalar(byte))'")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(Failure) {
        let count = literal.utf8CodeUnitCount
        guard offset + count <= bytes.count else { throw fail("invalid literal") }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: count)
        for index in 0..<count where bytes[offset + index] != expected[index] {
            throw fail("invalid literal")
        }
        offset += count
    }

    private mutating func parseObject(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= Self.maximumDepth else { throw fail("nesting deeper than \(Self.maximumDepth)") }
        offset += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            offset += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw fail("expected a member name in quotes") }
            let key = try parseString()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw fail("expected ':' after a member name") }
            offset += 1
            skipWhitespace()
            let start = offset
            members.append((key, try parseValue(depth: depth)))
            if recordsMembers, depth == 1 { memberSpans.append(start..<offset) }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "}"):
                offset += 1
                return .object(members)
            default: throw fail("expected ',' or '}' in an object")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= Self.maximumDepth else { throw fail("nesting deeper than \(Self.maximumDepth)") }
        offset += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            offset += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "]"):
                offset += 1
                return .array(elements)
            default: throw fail("expected ',' or ']' in an array")
            }
        }
    }

    private mutating func parseNumber() throws(Failure) -> Double {
        let start = offset
        var isInteger = true
        if current == UInt8(ascii: "-") { offset += 1 }
        guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw fail("invalid number")
        }
        if first == UInt8(ascii: "0") {
            offset += 1
            if let next = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) {
                throw fail("numbers cannot have leading zeros")
            }
        } else {
            skipDigits()
        }
        if current == UInt8(ascii: ".") {
            isInteger = false
            offset += 1
            guard skipDigits() > 0 else { throw fail("expected digits after '.'") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            offset += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { offset += 1 }
            guard skipDigits() > 0 else { throw fail("expected digits in the exponent") }
        }
        let length = offset - start
        // Short integers, the common case in feature vectors, without going through text.
        if isInteger && length <= 15 {
            var value: Int64 = 0
            var index = start
            let negative = bytes[index] == UInt8(ascii: "-")
            if negative { index += 1 }
            while index < offset {
                value = value * 10 + Int64(bytes[index] &- UInt8(ascii: "0"))
                index += 1
            }
            return Double(negative ? -value : value)
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw Failure(offset: start, reason: "number \(text.prefix(40)) is out of range")
        }
        return value
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = offset
        while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { offset += 1 }
        return offset - start
    }

    private mutating func parseString() throws(Failure) -> String {
        offset += 1
        let start = offset
        // Fast path: no escapes, which is nearly every key and value.
        while let byte = current {
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
                offset += 1
                return try Self.validUTF8(slice, at: start)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw fail("control character in a string") }
            offset += 1
        }
        var text = try Self.validUTF8(UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), at: start)
        var segmentStart = offset
        while let byte = current {
            switch byte {
            case UInt8(ascii: "\""):
                text += try Self.validUTF8(UnsafeRawBufferPointer(rebasing: bytes[segmentStart..<offset]), at: segmentStart)
                offset += 1
                return text
            case UInt8(ascii: "\\"):
                text += try Self.validUTF8(UnsafeRawBufferPointer(rebasing: bytes[segmentStart..<offset]), at: segmentStart)
                offset += 1
                text.unicodeScalars.append(try parseEscape())
                segmentStart = offset
            case 0..<0x20:
                throw fail("control character in a string")
            default:
                offset += 1
            }
        }
        throw fail("unterminated string")
    }

    private mutating func parseEscape() throws(Failure) -> Unicode.Scalar {
        guard let byte = current else { throw fail("unterminated escape") }
        offset += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let unit = try parseHex4()
            if (0xD800..<0xDC00).contains(unit) {
                guard current == UInt8(ascii: "\\"), offset + 1 < bytes.count, bytes[offset + 1] == UInt8(ascii: "u") else {
                    throw fail("lone surrogate in a \\u escape")
                }
                offset += 2
                let low = try parseHex4()
                guard (0xDC00..<0xE000).contains(low),
                    let scalar = Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                else { throw fail("invalid surrogate pair") }
                return scalar
            }
            guard let scalar = Unicode.Scalar(unit) else { throw fail("lone surrogate in a \\u escape") }
            return scalar
        default:
            throw fail("invalid escape '\\\(Unicode.Scalar(byte))'")
        }
    }

    private mutating func parseHex4() throws(Failure) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw fail("incomplete \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("invalid hex digit in a \\u escape")
            }
            value = value << 4 | UInt32(digit)
            offset += 1
        }
        return value
    }

    private static func validUTF8(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(Failure) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw Failure(offset: offset, reason: "invalid UTF-8 in a string")
        }
        return text
    }
}
