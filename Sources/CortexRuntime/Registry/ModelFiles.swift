import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The files a model was loaded from (the model and its manifest) as they were on disk then, to
/// tell an operator when the disk no longer matches what serves.
///
/// A model loaded into memory keeps serving when its file is deleted, truncated or overwritten,
/// which is right; but the next restart would load something else, or fail. `/ready` and
/// `/status` say so beforehand. Compared by device, inode, size and modification time: a
/// `stat` per file, cheap enough for every readiness evaluation.
public struct ModelFiles: Sendable, Equatable {
    struct Identity: Sendable, Equatable {
        var path: String
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedNanoseconds: Int64
    }

    /// What a file is now, against what was loaded.
    public enum Change: Sendable, Equatable, CustomStringConvertible {
        case missing(path: String)
        case changed(path: String, loadedSize: Int64, size: Int64)

        public var description: String {
            switch self {
            case .missing(let path): "\(path) is gone from disk"
            case .changed(let path, let loadedSize, let size):
                loadedSize == size
                    ? "\(path) was rewritten on disk since it was loaded"
                    : "\(path) changed on disk since it was loaded (\(loadedSize) bytes then, \(size) now)"
            }
        }
    }

    private let files: [Identity]

    /// The files at `paths` as they are now; one that cannot be read is left out.
    public init(paths: [String]) {
        files = paths.compactMap(Self.identity)
    }

    /// The paths watched.
    public var paths: [String] { files.map(\.path) }

    /// How the files differ from when they were loaded; empty while they match.
    public func changes() -> [Change] {
        files.compactMap { loaded in
            guard let now = Self.identity(loaded.path) else { return .missing(path: loaded.path) }
            return now == loaded ? nil : .changed(path: loaded.path, loadedSize: loaded.size, size: now.size)
        }
    }

    private static func identity(_ path: String) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Identity(
            path: path, device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }
}
