import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where JSON log lines go: a buffer that a dedicated thread writes to a file descriptor.
///
/// Requests append their lines and return; the writer thread drains whatever has
/// accumulated with one `write(2)`, so under load many lines share one system call and no
/// request waits on the terminal or the log collector. Lines at `error` and above are written
/// before ``append(_:urgent:)`` returns, and ``flush()`` (called at exit) writes the rest.
public final class LogOutput: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var writerWaiting = false
    }

    /// Most bytes held before appending blocks on the writer, so a stuck collector cannot grow memory.
    static let maximumPending = 4 << 20

    private let fileDescriptor: Int32
    private let state = Mutex(State())
    // Foundation's condition variable; it is documented thread-safe.
    private nonisolated(unsafe) let condition = NSCondition()
    /// Serialises the actual writes, so lines stay in order across the writer thread and urgent writes.
    private let writeLock = Mutex(())

    /// Creates an output writing to `fileDescriptor` (standard output by default) and starts its writer thread.
    public init(fileDescriptor: Int32 = 1) {
        self.fileDescriptor = fileDescriptor
        let thread = Thread { [self] in self.runWriter() }
        thread.name = "cortex-log-writer"
        thread.start()
    }

    /// Queues one complete line; `urgent` writes it (and everything before it) before returning.
    func append(_ line: [UInt8], urgent: Bool) {
        if urgent {
            flush(adding: line)
            return
        }
        var wake = false
        var full = false
        state.withLock { state in
            state.pending.append(contentsOf: line)
            full = state.pending.count >= Self.maximumPending
            if state.writerWaiting {
                state.writerWaiting = false
                wake = true
            }
        }
        if full {
            flush(adding: [])
        } else if wake {
            condition.lock()
            condition.signal()
            condition.unlock()
        }
    }

    /// Writes everything queued so far.
    public func flush() {
        flush(adding: [])
    }

    private func flush(adding line: [UInt8]) {
        writeLock.withLock { _ in
            var bytes = state.withLock { state in
                let taken = state.pending
                state.pending = []
                return taken
            }
            bytes.append(contentsOf: line)
            writeAll(bytes)
        }
    }

    private func runWriter() {
        while true {
            condition.lock()
            let hasWork = state.withLock { state in
                if state.pending.isEmpty {
                    state.writerWaiting = true
                    return false
                }
                return true
            }
            if !hasWork {
                // A timed wait also covers a signal that raced with the check above.
                _ = condition.wait(until: Date(timeIntervalSinceNow: 0.05))
            }
            condition.unlock()
            flush(adding: [])
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
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
