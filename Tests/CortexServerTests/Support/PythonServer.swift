import CortexTestSupport
import Foundation

/// A stand-in server written in Python (Tests/Python), run with the repository's `.venv` on a
/// loopback port it chooses and prints as `listening on PORT`.
final class PythonServer: Sendable {
    let process: CortexProcess
    let port: Int
    var url: String { "http://127.0.0.1:\(port)" }

    init(_ script: String, arguments: [String] = []) async throws {
        process = try CortexProcess(
            arguments: ["Tests/Python/\(script)"] + arguments, environment: [:], binary: Repository.path(".venv/bin/python"))
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            if let line = process.stdout.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }),
                let port = Int(line.dropFirst("listening on ".count))
            {
                self.port = port
                return
            }
            guard ContinuousClock.now < deadline, process.process.isRunning else {
                throw CortexProcess.Failure.didNotStart(process.stderr)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// `GET path`, its JSON body as an object.
    func get(_ path: String) throws -> [String: Any] {
        let body = try RawHTTPConnection.request(port: port, path: path)?.body ?? ""
        return try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
    }
}
