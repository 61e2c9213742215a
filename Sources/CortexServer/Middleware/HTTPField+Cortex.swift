public import HTTPTypes

extension HTTPField.Name {
    /// The client's request id, echoed back.
    public static let xRequestID = Self("X-Request-ID")!
    /// The request id under the name seed 001's clients read.
    public static let traceID = Self("Trace-Id")!
}
