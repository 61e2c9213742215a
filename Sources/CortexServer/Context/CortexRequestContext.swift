public import Hummingbird
public import NIOCore

/// A request context that carries the request id middleware assigned.
public protocol RequestIDContext: RequestContext {
    /// The request's id: the client's sane `X-Request-ID`, or a generated one.
    var requestID: String { get set }
}

/// Cortex's request context: what middleware learns about a request on its way in.
public struct CortexRequestContext: AuthenticatedContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID: String
    public var principal: Principal?
    /// The client's address, for rate limits on anonymous requests.
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = ""
        self.principal = nil
        self.remoteAddress = source.channel.remoteAddress
    }
}
