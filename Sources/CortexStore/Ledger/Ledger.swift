public import CortexCore
import Crypto
public import Foundation

/// The credits ledger: balances that only change through append-only entries.
///
/// Every billed request holds its price first (never taking a balance below zero), then
/// settles the hold with its real cost or releases it. Entries are keyed by tenant and request
/// id, so the same request can never be held or settled twice; a tenant's balance is always
/// the sum of its entries.
public protocol Ledger: Sendable {
    /// Holds `hold.amount` on the tenant's balance, or says why it could not.
    func hold(_ hold: Hold) async throws -> HoldOutcome
    /// Makes a hold final, charging `cost` (at most the held amount; the rest goes back).
    ///
    /// With `idempotentResponse`, the response is stored with the settlement in one transaction,
    /// for retries with the same `Idempotency-Key`. Returns `false` when the hold is unknown or
    /// was already settled or released (expired), in which case nothing is charged.
    func settle(tenantID: Int64, requestID: String, cost: Credits, idempotentResponse: StoredResponse?) async throws -> Bool
    /// Returns a hold to the balance: the request failed, nothing is charged.
    func release(tenantID: Int64, requestID: String) async throws -> Bool
    /// Adds (or, negative, removes) credits; a removal never takes the balance below zero.
    func grant(_ grant: Grant) async throws -> GrantOutcome
    /// The tenant's balance and what is currently held.
    func balance(tenantID: Int64) async throws -> Balance
    /// The tenant's entries, newest first, before entry id `before` if given.
    func entries(tenantID: Int64, limit: Int, before: Int64?) async throws -> [LedgerEntry]
    /// Settled requests and credits spent, per model.
    func usage(tenantID: Int64) async throws -> [ModelUsage]
    /// Releases every hold whose expiry is at or before `time` (their requests died); returns how many.
    func releaseExpiredHolds(at time: Date) async throws -> Int
    /// Forgets the `Idempotency-Key` records of finished requests older than `ttl` at `time`
    /// (a retry after that is a new request); returns how many.
    func forgetIdempotencyKeys(olderThan ttl: Duration, at time: Date) async throws -> Int
    /// Every ledger invariant that does not hold, named; empty when the ledger is consistent.
    ///
    /// Holds count as stuck once they are `slack` past their expiry.
    func verify(at time: Date, slack: Duration) async throws -> [String]
}

/// A request to hold credits for one request.
public struct Hold: Sendable, Hashable {
    /// Whose balance.
    public var tenantID: Int64
    /// The request being billed; one hold per tenant and request id.
    public var requestID: String
    /// What to hold (positive).
    public var amount: Credits
    /// The model billed, for usage reports.
    public var model: String
    /// The API key used, for the audit trail.
    public var keyID: Int64?
    /// When the hold is released if its request never settles it.
    public var expiresAt: Date
    /// The client's `Idempotency-Key` and a fingerprint of its request, if it sent one.
    public var idempotency: Idempotency?
    /// Whether Cortex made the request id (the client sent none), so no earlier request can
    /// have it: such a hold may be made on a credit lease (``LeasingLedger``), where a request id
    /// is claimed only when it settles. A client's own id is claimed in the database before the work.
    public var requestIDIsUnique: Bool

    /// Creates a hold request.
    public init(
        tenantID: Int64,
        requestID: String,
        amount: Credits,
        model: String,
        keyID: Int64?,
        expiresAt: Date,
        idempotency: Idempotency? = nil,
        requestIDIsUnique: Bool = false
    ) {
        self.requestIDIsUnique = requestIDIsUnique
        self.tenantID = tenantID
        self.requestID = requestID
        self.amount = amount
        self.model = model
        self.keyID = keyID
        self.expiresAt = expiresAt
        self.idempotency = idempotency
    }
}

/// A client's `Idempotency-Key` and what identifies its request.
public struct Idempotency: Sendable, Hashable {
    /// The key as sent.
    public var key: String
    /// A digest of the method, path and body: a key reused for a different request is refused.
    public var fingerprint: String

    /// Creates the value.
    public init(key: String, fingerprint: String) {
        self.key = key
        self.fingerprint = fingerprint
    }
}

/// A response kept to answer a retry with the same `Idempotency-Key`.
public struct StoredResponse: Sendable, Hashable {
    /// HTTP status.
    public var status: Int
    /// The body as sent.
    public var body: String

    /// Creates the value.
    public init(status: Int, body: String) {
        self.status = status
        self.body = body
    }
}

/// What came of a hold.
public enum HoldOutcome: Sendable, Hashable {
    /// Held; the balance left afterwards.
    case held(balance: Credits)
    /// The balance cannot cover the amount; nothing was held.
    case insufficient(balance: Credits)
    /// This request id was billed before; nothing was held.
    case duplicateRequest
    /// The `Idempotency-Key` was used before: its finished response, or `nil` while its first
    /// request is still running; `fingerprintMatches` is false when the key came with a different request.
    case idempotentReplay(StoredResponse?, fingerprintMatches: Bool)
    /// The tenant does not exist.
    case unknownTenant
}

/// A change of balance made by an operator.
public struct Grant: Sendable, Hashable {
    /// Whose balance.
    public var tenantID: Int64
    /// What to add; negative to remove.
    public var amount: Credits
    /// The request (or CLI invocation) that made it; one grant per id.
    public var requestID: String
    /// Why, for the audit trail.
    public var note: String?

    /// Creates a grant.
    public init(tenantID: Int64, amount: Credits, requestID: String, note: String?) {
        self.tenantID = tenantID
        self.amount = amount
        self.requestID = requestID
        self.note = note
    }
}

/// What came of a grant.
public enum GrantOutcome: Sendable, Hashable {
    /// Done; the balance afterwards.
    case granted(balance: Credits)
    /// A removal larger than the balance; nothing changed.
    case insufficient(balance: Credits)
    /// An addition that would take the balance, with what is held, past
    /// ``Credits/maximumBalance``; nothing changed.
    case overLimit(balance: Credits)
    /// A grant with this request id exists; nothing changed.
    case duplicateRequest
    /// The tenant does not exist.
    case unknownTenant
}

/// A tenant's credits.
public struct Balance: Sendable, Hashable {
    /// What can be spent now (held amounts already taken out).
    public var available: Credits
    /// The sum of open holds.
    public var held: Credits
    /// Of `available`, what replicas have leased (``LeasingLedger``) and not spent yet: their
    /// own requests spend it first, and it goes back to the balance when unused.
    public var leased: Credits

    /// Creates the value.
    public init(available: Credits, held: Credits, leased: Credits = .zero) {
        self.available = available
        self.held = held
        self.leased = leased
    }
}

/// One append-only ledger entry.
public struct LedgerEntry: Sendable, Hashable {
    /// What an entry records.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Credits held for a request (negative).
        case hold
        /// A hold made final; the amount returns what was held but not spent (zero or positive).
        case settle
        /// A hold returned in full: the request failed or expired (positive).
        case release
        /// Credits added or removed by an operator.
        case grant
    }

    /// Ordering id.
    public var id: Int64
    /// Whose balance.
    public var tenantID: Int64
    /// The request it belongs to.
    public var requestID: String
    /// What it records.
    public var kind: Kind
    /// The change of balance.
    public var amount: Credits
    /// The model, for holds.
    public var model: String?
    /// The operator's note, for grants.
    public var note: String?
    /// When it was written.
    public var createdAt: Date
}

/// Settled requests and spend for one model.
public struct ModelUsage: Sendable, Hashable {
    /// The model.
    public var model: String
    /// How many requests were charged.
    public var requests: Int64
    /// What they cost in total.
    public var spent: Credits
}

extension Idempotency {
    /// The fingerprint of a request: the hex SHA-256 of its method, path and body.
    public static func fingerprint(method: String, path: String, body: UnsafeRawBufferPointer) -> String {
        var hasher = SHA256()
        hasher.update(data: Array("\(method) \(path)\n".utf8))
        hasher.update(bufferPointer: body)
        return APIKeyHash.hex(hasher.finalize())
    }
}
