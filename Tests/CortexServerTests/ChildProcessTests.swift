import CortexTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The tests' own process starter (Foundation's `Process.run()` can crash on Linux once the test
/// process has about 1,350 descriptors open; see ``ChildProcess``).
@Suite("Child processes of the tests")
struct ChildProcessTests {
    @Test("with 1,500 descriptors open here, a child starts, inherits none of them, and reports its exit code")
    func manyDescriptors() async throws {
        var held: [Int32] = []
        defer { for descriptor in held { close(descriptor) } }
        for _ in 0..<1_500 { held.append(open("/dev/null", O_RDONLY)) }
        #expect(held.allSatisfy { $0 >= 0 })
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        FileManager.default.createFile(atPath: directory.file("out"), contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.file("out")))
        let child = try ChildProcess(
            executable: "/bin/sh",
            arguments: ["-c", "ls /proc/self/fd | wc -l; pwd; echo \"$MARK\"; exit 3"],
            environment: ["MARK": "from the test", "PATH": "/usr/bin:/bin"],
            directory: directory.path,
            standardOutput: output.fileDescriptor
        )
        try output.close()
        #expect(try await child.waitForExit(timeout: .seconds(30)) == 3)
        let lines = try String(contentsOfFile: directory.file("out"), encoding: .utf8).split(separator: "\n")
        // ls sees standard input, output and error, and the directory it reads: nothing of ours.
        #expect(lines.count == 3)
        #expect(Int(lines.first ?? "") ?? 0 <= 4)
        #expect(lines.dropFirst().first.map(String.init) == URL(fileURLWithPath: directory.path).resolvingSymlinksInPath().path)
        #expect(lines.last == "from the test")
    }

    @Test("a child ended by a signal reports the signal; one still running is not reported as ended")
    func signals() async throws {
        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["30"], environment: [:])
        #expect(child.isRunning)
        #expect(try await child.waitForExit(timeout: .milliseconds(100)) == nil)
        child.signal(SIGTERM)
        #expect(try await child.waitForExit(timeout: .seconds(30)) == SIGTERM)
        #expect(!child.isRunning)
    }
}
