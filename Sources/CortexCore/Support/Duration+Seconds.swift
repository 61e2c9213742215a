extension Duration {
    /// The duration as fractional seconds, for logs and APIs that take `TimeInterval`.
    public var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
