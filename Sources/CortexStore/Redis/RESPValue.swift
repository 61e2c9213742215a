import NIOCore

/// A Redis reply (RESP2).
public enum RESPValue: Sendable, Hashable {
    /// `+OK`
    case simpleString(String)
    /// `-ERR ...`: a reply, not a transport failure.
    case error(String)
    /// `:42`
    case integer(Int64)
    /// `$5\r\nhello`; `nil` for the null bulk string `$-1`.
    case bulkString([UInt8]?)
    /// `*2\r\n...`; `nil` for the null array `*-1`.
    case array([RESPValue]?)

    /// The value as text, for simple and bulk strings.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes?): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }
}

/// Encodes commands and decodes replies in RESP2, Redis's wire format.
enum RESP {
    /// Largest bulk string or array accepted from the server; a reply claiming more is a protocol error.
    static let maximumLength = 512 * 1024 * 1024

    /// Writes a command as an array of bulk strings.
    static func encode(_ command: [String], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(command.count)\r\n")
        for argument in command {
            buffer.writeString("$\(argument.utf8.count)\r\n")
            buffer.writeString(argument)
            buffer.writeString("\r\n")
        }
    }

    /// A reply the server sent that does not follow RESP.
    struct ProtocolError: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads one complete reply from the buffer, or returns `nil` (consuming nothing) if more bytes are needed.
    static func decode(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        var copy = buffer
        guard let value = try decodeValue(&copy) else { return nil }
        buffer = copy
        return value
    }

    private static func decodeValue(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self), let line = readLine(&buffer) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return .simpleString(line)
        case UInt8(ascii: "-"):
            return .error(line)
        case UInt8(ascii: ":"):
            guard let value = Int64(line) else { throw ProtocolError(description: "bad integer '\(line)'") }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Int(line), length >= -1, length <= maximumLength else {
                throw ProtocolError(description: "bad bulk length '\(line)'")
            }
            if length == -1 { return .bulkString(nil) }
            guard buffer.readableBytes >= length + 2, let bytes = buffer.readBytes(length: length) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(line), count >= -1, count <= maximumLength else {
                throw ProtocolError(description: "bad array length '\(line)'")
            }
            if count == -1 { return .array(nil) }
            var elements: [RESPValue] = []
            elements.reserveCapacity(min(count, 1024))
            for _ in 0..<count {
                guard let element = try decodeValue(&buffer) else { return nil }
                elements.append(element)
            }
            return .array(elements)
        default:
            throw ProtocolError(description: "unknown reply type byte \(type)")
        }
    }

    /// A line up to CRLF, without it; `nil` if the CRLF has not arrived.
    private static func readLine(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")), view.index(after: cr) < view.endIndex,
            view[view.index(after: cr)] == UInt8(ascii: "\n")
        else { return nil }
        let length = cr - view.startIndex
        let line = buffer.readString(length: length)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}
