import CortexCore
import CortexStore

extension JSONWriter {
    /// Writes credits as an exact JSON number (from their decimal text, never through a Double).
    mutating func member(_ name: String, _ credits: Credits) {
        key(name)
        raw(credits.description)
    }

    /// Writes a tenant's `balance`, `held` and `usage` (per model: requests and credits spent).
    mutating func creditFields(balance: Balance, usage: [ModelUsage]) {
        member("balance", balance.available)
        member("held", balance.held)
        member("leased", balance.leased)
        key("usage")
        beginObject()
        var requests: Int64 = 0
        var spent = Credits.zero
        key("models")
        beginObject()
        for model in usage {
            key(model.model)
            beginObject()
            member("requests", Int(model.requests))
            member("credits_spent", model.spent)
            endObject()
            requests += model.requests
            spent = spent.adding(model.spent) ?? spent
        }
        endObject()
        member("requests", Int(requests))
        member("credits_spent", spent)
        endObject()
    }

    /// Writes one ledger entry.
    mutating func entry(_ entry: LedgerEntry) {
        beginObject()
        member("id", Int(entry.id))
        member("request_id", entry.requestID)
        member("kind", entry.kind.rawValue)
        member("amount", entry.amount)
        if let model = entry.model {
            member("model", model)
        }
        if let note = entry.note {
            member("note", note)
        }
        member("created_at", entry.createdAt.ISO8601Format())
        endObject()
    }
}
