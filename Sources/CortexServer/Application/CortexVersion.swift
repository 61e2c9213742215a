/// The version this build reports in `/v2`, `cortex_build_info` and `cortex --version`.
public enum CortexVersion {
    /// Semantic version of the server.
    public static let current = "0.1.0"
}
