#if os(Linux)
    import CMalloc
#endif

/// How the memory of a model that is let go (a promotion, an unload, a reload) gets back to the
/// system.
///
/// A model session's weights are a few large allocations. glibc's `malloc` serves an allocation
/// of 128 KiB or more with its own `mmap`, returned to the system by `free`, but each such `free`
/// raises the threshold to that block's size (up to 32 MiB), so the next session's blocks come
/// from the heap arenas instead, of which each thread that loads has its own, and freed arena
/// memory mostly stays with the process. Measured with `bench/models.sh` (a 17 MB model promoted
/// 20 times under load): RSS grew from 160 to 270 MiB with the moving threshold, and stayed at
/// 104 MiB with it fixed at 128 KiB, 107 MiB at 1 MiB.
///
/// Cortex fixes it at 1 MiB: model weights are larger blocks, and what a request allocates (a
/// 224x224 image decoded is 150 KiB) stays on the heap, where it is reused without a system call.
public enum ModelMemory {
    /// The threshold Cortex fixes: 1 MiB.
    public static let mmapThreshold: Int32 = 1 << 20

    /// Fixes glibc's mmap threshold at ``mmapThreshold``, so a model let go returns its memory at
    /// once; unless the operator chose one (`MALLOC_MMAP_THRESHOLD_`, or `GLIBC_TUNABLES` with
    /// `glibc.malloc.mmap_threshold`), which is then left alone.
    ///
    /// - Returns: Whether the threshold was set here.
    @discardableResult
    public static func returnFreedModels(environment: [String: String]) -> Bool {
        guard environment["MALLOC_MMAP_THRESHOLD_"] == nil, environment["GLIBC_TUNABLES"]?.contains("mmap_threshold") != true else {
            return false
        }
        #if os(Linux)
            return mallopt(M_MMAP_THRESHOLD, mmapThreshold) == 1
        #else
            return false
        #endif
    }
}
