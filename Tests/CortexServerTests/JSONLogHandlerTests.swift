import CortexCore
import Foundation
import Logging
import Testing

@testable import CortexServer

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    @Test("each event is one parseable JSON object with typed fields")
    func oneObjectPerLine() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let output = LogOutput(fileDescriptor: fds[1])
        let handler = JSONLogHandler(label: "t", level: .info, output: output)
        var logger = Logger(label: "t") { _ in handler }
        logger[metadataKey: "request_id"] = "r-1"
        logger.info("REQ_END", metadata: ["status": .stringConvertible(200), "path": "/a\"b\n", "ok": .stringConvertible(true)])
        logger.debug("HIDDEN")
        output.flush()
        close(fds[1])
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = read(fds[0], &bytes, bytes.count)
        let text = String(decoding: bytes[0..<max(count, 0)], as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(object["event"] as? String == "REQ_END")
        #expect(object["level"] as? String == "INFO", "capitals: the runbooks grep ERROR")
        #expect(object["request_id"] as? String == "r-1")
        #expect(object["status"] as? Int == 200)
        #expect(object["ok"] as? Bool == true)
        #expect(object["path"] as? String == "/a\"b\n")
        #expect((object["ts"] as? String)?.hasSuffix("Z") == true)
    }

    @Test("a configured secret in any field of a line is redacted; the line stays valid JSON")
    func redactsSecrets() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let output = LogOutput(fileDescriptor: fds[1])
        let redactor = SecretRedactor(secrets: ["admin-token-0123456789"])
        let handler = JSONLogHandler(label: "t", level: .info, output: output, redactor: redactor)
        let logger = Logger(label: "t") { _ in handler }
        logger.warning("LLM_FAIL", metadata: ["error": "upstream said: Bearer admin-token-0123456789 is wrong"])
        output.flush()
        close(fds[1])
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = read(fds[0], &bytes, bytes.count)
        let text = String(decoding: bytes[0..<max(count, 0)], as: UTF8.self)
        #expect(!text.contains("admin-token-0123456789"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["error"] as? String == "upstream said: Bearer [redacted] is wrong")
    }
}
