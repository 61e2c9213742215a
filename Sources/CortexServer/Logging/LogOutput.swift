import CortexCore
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where JSON log lines go: a buffer that a dedicated thread writes to a file descriptor.
///
/// Requests append their lines and return; the writer thread wakes every ``flushInterval`` and
/// drains whatever has accumulated with one `write(2)`. Under load hundreds of lines share one
/// system call, no request waits on the terminal or the log collector, and no request pays for
/// waking another thread (which, per line, cost more than the write itself). Lines at `error`
/// and above are written before ``append(_:urgent:)`` returns, and ``flush()`` (called at exit)
/// writes the rest.
public final class LogOutput: Sendable {
    /// How often the writer thread drains the buffer: the most a line waits before it is written.
    static let flushInterval = Duration.milliseconds(20)
    /// Bytes past which the appending request writes the buffer itself, so memory stays bounded.
    static let maximumPending = 1 << 20

    private let fileDescriptor: Int32
    private let pending = Mutex<[UInt8]>([])
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
        let full = pending.withLock { pending in
            pending.append(contentsOf: line)
            return pending.count >= Self.maximumPending
        }
        if full {
            flush(adding: [])
        }
    }

    /// Writes everything queued so far.
    public func flush() {
        flush(adding: [])
    }

    private func flush(adding line: [UInt8]) {
        writeLock.withLock { _ in
            var bytes = pending.withLock { pending in
                let taken = pending
                pending.removeAll(keepingCapacity: true)
                return taken
            }
            bytes.append(contentsOf: line)
            writeAll(bytes)
        }
    }

    private func runWriter() {
        let interval = Self.flushInterval.inSeconds
        while true {
            Thread.sleep(forTimeInterval: interval)
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
