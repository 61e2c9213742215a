import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawn`, for the tests' servers and command runs.
///
/// Not `Foundation.Process`: on Linux its `run()` lists `/proc/self/fd` by copying each entry's
/// whole 256-byte name, which reads past glibc's 32 KB directory buffer once the process has
/// about 1,350 descriptors open, and crashes (swift-corelibs-foundation PR #5472). A test process
/// running many servers and clients at once gets there. Here the child closes every descriptor
/// above 2 with `posix_spawn_file_actions_addclosefrom_np`, which reads no directory.
public final class ChildProcess: Sendable {
    public struct SpawnError: Error, CustomStringConvertible {
        public let executable: String
        public let code: Int32
        public var description: String { "could not start \(executable): \(String(cString: strerror(code)))" }
    }

    public let processIdentifier: Int32
    /// The exit status once the child was reaped: its exit code, or the number of the signal that ended it.
    private let status = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments`, exactly `environment`, in `directory`; standard
    /// output and error go to the given descriptors (the test's own when `nil`), standard input
    /// reads nothing.
    public init(
        executable: String,
        arguments: [String],
        environment: [String: String],
        directory: String? = nil,
        standardOutput: Int32? = nil,
        standardError: Int32? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let standardOutput { posix_spawn_file_actions_adddup2(&actions, standardOutput, 1) }
        if let standardError { posix_spawn_file_actions_adddup2(&actions, standardError, 2) }
        guard let closeFrom = Self.addCloseFrom, let changeDirectory = Self.addChangeDirectory else {
            throw SpawnError(executable: executable, code: ENOSYS)
        }
        _ = closeFrom(&actions, 3)
        if let directory { _ = changeDirectory(&actions, directory) }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        // As from a shell: no signal blocked, every signal at its default action (the test
        // process may ignore SIGPIPE or block others, and a child would inherit that).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard code == 0 else { throw SpawnError(executable: executable, code: code) }
        processIdentifier = pid
    }

    /// Whether the child still runs (reaps it when it has ended).
    public var isRunning: Bool {
        status.withLock { status in
            guard status == nil else { return false }
            var raw: Int32 = 0
            guard waitpid(processIdentifier, &raw, WNOHANG) == processIdentifier else { return true }
            status = Self.decode(raw)
            return false
        }
    }

    /// The exit code, or the signal that ended the child; `nil` while it runs.
    public var terminationStatus: Int32? {
        _ = isRunning
        return status.withLock { $0 }
    }

    /// Sends `signal` to the child, if it has not been reaped.
    public func signal(_ signal: Int32) {
        status.withLock { status in
            if status == nil { _ = Glibc.kill(processIdentifier, signal) }
        }
    }

    /// Blocks until the child ends and returns its status.
    @discardableResult
    public func waitUntilExit() -> Int32 {
        status.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            while waitpid(processIdentifier, &raw, 0) < 0 && errno == EINTR {}
            let decoded = Self.decode(raw)
            status = decoded
            return decoded
        }
    }

    /// Waits (polling, without blocking a thread) until the child ends or `timeout` passes.
    ///
    /// - Returns: The exit status, or `nil` if the child still runs.
    public func waitForExit(timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        return terminationStatus
    }

    /// Kills the child (SIGKILL) if it still runs, and reaps it.
    public func kill() {
        signal(SIGKILL)
        waitUntilExit()
    }

    // glibc 2.34's closefrom and 2.29's chdir file actions, which Swift's Glibc module does not import.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    private typealias AddChangeDirectory =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    private static let addCloseFrom = symbol("posix_spawn_file_actions_addclosefrom_np", as: AddCloseFrom.self)
    private static let addChangeDirectory = symbol("posix_spawn_file_actions_addchdir_np", as: AddChangeDirectory.self)

    private static func symbol<Function>(_ name: String, as type: Function.Type) -> Function? {
        guard let address = dlsym(dlopen(nil, RTLD_NOW), name) else { return nil }
        return unsafeBitCast(address, to: type)
    }

    private static func decode(_ raw: Int32) -> Int32 {
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import as macros.
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : signal
    }
}
