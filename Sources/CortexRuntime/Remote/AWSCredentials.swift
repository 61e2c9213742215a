public import AsyncHTTPClient
import CortexCore
public import Foundation
import NIOCore
import Synchronization

/// Where SageMaker calls get their AWS credentials, as the AWS SDKs look for them: the
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` variables, or the container
/// credentials endpoint that ECS tasks and EKS Pod Identity give a pod
/// (`AWS_CONTAINER_CREDENTIALS_FULL_URI` or `_RELATIVE_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN`
/// or `_TOKEN_FILE`). Credentials from the endpoint are temporary: they are fetched again five
/// minutes before they expire, by the first call that needs them.
public final class AWSCredentialSource: Sendable {
    public enum Source: Sendable, Equatable {
        /// Keys given directly.
        case keys(SignatureV4.Credentials)
        /// The container credentials endpoint: `GET url`, with the token (or the file's contents,
        /// read at each fetch since the platform rotates it) as `Authorization`.
        case container(url: String, token: String?, tokenFile: String?)
    }

    public let source: Source
    /// The last credentials fetched, whether a fetch is under way, and the calls waiting for it:
    /// calls that find the cache stale while a fetch runs wait for that one rather than each
    /// asking the endpoint.
    private struct State {
        var cached: (SignatureV4.Credentials, expires: Date)?
        var fetching = false
        var waiters: [CheckedContinuation<SignatureV4.Credentials, any Error>] = []
    }
    private let state = Mutex(State())
    private let clock: @Sendable () -> Date

    public init(_ source: Source, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.source = source
        self.clock = clock
    }

    /// Where the credentials come from, for the log: never the keys.
    public var description: String {
        switch source {
        case .keys: "AWS_ACCESS_KEY_ID"
        case .container(let url, _, _): "the container credentials endpoint \(url)"
        }
    }

    /// Credentials good for at least five more minutes.
    public func current() async throws -> SignatureV4.Credentials {
        switch source {
        case .keys(let credentials):
            return credentials
        case .container(let url, let token, let tokenFile):
            let now = clock()
            // Fresh credentials; else this call fetches, or waits for the fetch under way.
            let fresh = { (state: State) -> SignatureV4.Credentials? in
                state.cached.flatMap { $0.expires.timeIntervalSince(now) > 300 ? $0.0 : nil }
            }
            let turn = state.withLock { state -> Turn in
                if let credentials = fresh(state) { return .ready(credentials) }
                if state.fetching { return .wait }
                state.fetching = true
                return .fetch
            }
            switch turn {
            case .ready(let credentials):
                return credentials
            case .wait:
                // The fetch may end before this call is queued: the check and the queueing are one step.
                return try await withCheckedThrowingContinuation { continuation in
                    let answer = state.withLock { state -> Result<SignatureV4.Credentials, any Error>? in
                        if let credentials = fresh(state) { return .success(credentials) }
                        if state.fetching {
                            state.waiters.append(continuation)
                            return nil
                        }
                        return .failure(RemoteModel.Failure(description: "no AWS credentials from \(url): the fetch failed"))
                    }
                    if let answer { continuation.resume(with: answer) }
                }
            case .fetch:
                let result: Result<(SignatureV4.Credentials, expires: Date), any Error>
                do {
                    result = .success(try await Self.fetch(url: url, token: token, tokenFile: tokenFile))
                } catch {
                    result = .failure(error)
                }
                let waiters = state.withLock { state in
                    if case .success(let fetched) = result { state.cached = fetched }
                    state.fetching = false
                    defer { state.waiters = [] }
                    return state.waiters
                }
                let credentials = result.map(\.0)
                for waiter in waiters { waiter.resume(with: credentials) }
                return try credentials.get()
            }
        }
    }

    /// What a call does: use fresh credentials, wait for the fetch under way, or fetch.
    private enum Turn {
        case ready(SignatureV4.Credentials)
        case wait
        case fetch
    }

    /// `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}` from the endpoint.
    static func fetch(url: String, token: String?, tokenFile: String?) async throws -> (SignatureV4.Credentials, expires: Date) {
        var request = HTTPClientRequest(url: url)
        var authorization = token
        if let tokenFile {
            do {
                authorization = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw RemoteModel.Failure(description: "the container credentials token file \(tokenFile) cannot be read")
            }
        }
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        let body: ByteBuffer
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            body = try await response.body.collect(upTo: 1 << 16)
            guard response.status == .ok else {
                throw RemoteModel.Failure(description: "answered \(response.status.code)")
            }
        } catch {
            throw RemoteModel.Failure(description: "no AWS credentials from \(url): \(error)")
        }
        guard case .object(let fields) = try? JSONParser.parse(Array(buffer: body)) else {
            throw RemoteModel.Failure(description: "the credentials from \(url) are not JSON")
        }
        func field(_ name: String) -> String? {
            if case .string(let text) = fields.first(where: { $0.0 == name })?.1 { text } else { nil }
        }
        guard let keyID = field("AccessKeyId"), let secret = field("SecretAccessKey") else {
            throw RemoteModel.Failure(description: "the credentials from \(url) have no AccessKeyId or SecretAccessKey")
        }
        let expires = field("Expiration").flatMap { try? Date($0, strategy: .iso8601) } ?? Date().addingTimeInterval(600)
        return (SignatureV4.Credentials(accessKeyID: keyID, secretAccessKey: secret, sessionToken: field("Token")), expires)
    }
}
