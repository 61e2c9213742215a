import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Keeps Cortex from touching SQLite's shared-memory file (`cortex.db-shm`, the WAL index) once
/// something outside it has changed that file.
///
/// SQLite maps the file into memory. Truncated (or, for a process that cannot write it, made
/// read-only and re-mapped), its pages are gone and the next access kills the process with
/// SIGBUS; deleted or replaced, another process (the CLI) would build a second index over the
/// same WAL. None of this can be caught once SQLite touches the memory, so the file is checked
/// first (one `stat`) before every statement outside a transaction and at the start of every
/// transaction (a ledger batch of many statements pays one), and a changed file fails it: billed requests get 503
/// `billing_unavailable` and `/ready` turns 503 naming the file. A change in the instant between
/// the check and the access can still bring the process down; the check closes the window that
/// stays open for good otherwise.
final class SharedMemoryGuard: Sendable {
    /// The `-shm` file's path.
    let path: String
    private let device: UInt64
    private let inode: UInt64
    /// The largest size seen: SQLite grows the file and never shrinks it while it is open.
    private let size: Atomic<Int>

    /// Records the file as SQLite created it; `nil` when there is none (not in WAL mode).
    init?(databasePath: String) {
        path = databasePath + "-shm"
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Atomic(Int(info.st_size))
    }

    /// Throws when the file is gone, replaced, smaller than it was, or not writable.
    func check() throws(StoreFailure) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw StoreFailure(reason: "\(path) is gone (\(String(cString: strerror(errno)))): restart Cortex")
        }
        guard UInt64(info.st_dev) == device, UInt64(info.st_ino) == inode else {
            throw StoreFailure(reason: "\(path) was replaced outside Cortex: restart Cortex")
        }
        let seen = size.load(ordering: .relaxed)
        guard Int(info.st_size) >= seen else {
            throw StoreFailure(reason: "\(path) was truncated outside Cortex (\(info.st_size) of \(seen) bytes): restart Cortex")
        }
        if Int(info.st_size) > seen { size.store(Int(info.st_size), ordering: .relaxed) }
        guard access(path, W_OK) == 0 else {
            throw StoreFailure(reason: "\(path) is not writable (\(String(cString: strerror(errno))))")
        }
    }
}
