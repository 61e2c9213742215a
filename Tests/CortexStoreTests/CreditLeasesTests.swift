import Foundation
import Testing

@testable import CortexStore

/// Every decision of a replica's credit leases, without threads, clocks or a database: the
/// time is passed in, and the database's answers are the arguments.
@Suite("Credit leases (decisions)")
struct CreditLeasesTests {
    typealias Leases = CreditLeases
    static let start = ContinuousClock.now
    static let policy = CreditLeasePolicy(
        holdsPerLease: 10, minimumLeasesInBalance: 16, idleReturn: .seconds(1), refusalBackoff: .seconds(2))

    static func hold(_ amount: Int64) -> LocalHold {
        LocalHold(amount: amount, model: "m", keyID: 1, expiresAt: Date(timeIntervalSince1970: 1e10))
    }

    static func key(_ request: String, tenant: Int64 = 1) -> Leases.Key {
        Leases.Key(tenant: tenant, request: request)
    }

    /// A lease of 10 holds of 5 taken for tenant 1 from a balance of 1,000, the first hold on it.
    static func leased() -> Leases {
        var leases = Leases(policy: policy)
        let step1 = leases.admit(hold(5), key: key("a"), now: start)
        #expect(step1 == .take(amount: 50, minimumBalance: 800))
        let step2 = leases.took(tenant: 1, amount: 50, balance: 950, hold: hold(5), key: key("a"), now: start)
        #expect(step2 == .held(balance: 995))
        return leases
    }

    @Test("the first hold takes a lease of holdsPerLease holds, allowed while the balance covers 16 leases; then holds on it")
    func firstHold() {
        let leases = Self.leased()
        #expect(leases.held(tenant: 1) == (5, 1))
        #expect(leases.tenants[1]?.leased == 50)
        #expect(leases.hold(Self.key("a")) == Self.hold(5))
    }

    @Test("holds fit while leased minus held covers them; the one that does not fit takes the next lease")
    func fitsThenTakes() {
        var leases = Self.leased()
        for index in 1...9 {
            let step3 = leases.admit(Self.hold(5), key: Self.key("r\(index)"), now: Self.start)
            #expect(step3 == .held(balance: 995 - Int64(index) * 5))
        }
        #expect(leases.held(tenant: 1) == (50, 10))
        let step4 = leases.admit(Self.hold(5), key: Self.key("next"), now: Self.start)
        #expect(step4 == .take(amount: 50, minimumBalance: 800))
        // While that lease is being taken, other holds of the tenant go to the database.
        let step5 = leases.admit(Self.hold(5), key: Self.key("other"), now: Self.start)
        #expect(step5 == .database)
        let step6 = leases.took(tenant: 1, amount: 50, balance: 900, hold: Self.hold(5), key: Self.key("next"), now: Self.start)
        #expect(
            step6
                == .held(balance: 945))
        #expect(leases.tenants[1]?.leased == 100)
    }

    @Test("a settlement charges the lease its cost; the rest of the hold is free again")
    func settle() {
        var leases = Self.leased()
        leases.settled(Self.key("a"), .charged(cost: 3), now: Self.start)
        #expect(leases.tenants[1]?.leased == 47)
        #expect(leases.held(tenant: 1) == (0, 0))
        #expect(leases.hold(Self.key("a")) == nil)
        let step7 = leases.admit(Self.hold(47), key: Self.key("b"), now: Self.start)
        #expect(step7 == .held(balance: 950))
    }

    @Test("a release gives the hold back to the lease; an unknown request is not the lease's")
    func release() {
        var leases = Self.leased()
        let step8 = leases.released(Self.key("a"), now: Self.start)
        #expect(step8)
        let step9 = leases.released(Self.key("a"), now: Self.start)
        #expect(!step9)
        let step10 = leases.released(Self.key("never"), now: Self.start)
        #expect(!step10)
        #expect(leases.tenants[1]?.leased == 50)
        #expect(leases.held(tenant: 1) == (0, 0))
    }

    @Test("a refused lease sends the tenant's holds to the database until the back-off ends, then tries again")
    func refused() {
        var leases = Leases(policy: Self.policy)
        let step11 = leases.admit(Self.hold(5), key: Self.key("a"), now: Self.start)
        #expect(step11 == .take(amount: 50, minimumBalance: 800))
        let step12 = leases.took(tenant: 1, amount: 50, balance: nil, hold: Self.hold(5), key: Self.key("a"), now: Self.start)
        #expect(step12 == .database)
        let step13 = leases.admit(Self.hold(5), key: Self.key("b"), now: Self.start + .seconds(1))
        #expect(step13 == .database)
        let step14 = leases.admit(Self.hold(5), key: Self.key("c"), now: Self.start + .seconds(2))
        #expect(step14 == .take(amount: 50, minimumBalance: 800))
    }

    @Test("a refused top-up returns what is left of the lease once nothing is in flight on it, so the database can spend it")
    func refusedReturns() {
        var leases = Self.leased()
        leases.settled(Self.key("a"), .charged(cost: 5), now: Self.start)
        for index in 1...9 { _ = leases.admit(Self.hold(5), key: Self.key("r\(index)"), now: Self.start) }
        leases.settled(Self.key("r1"), .charged(cost: 5), now: Self.start)
        // 40 leased, 40 held: the next hold needs a lease, which the balance no longer allows.
        let step15 = leases.admit(Self.hold(5), key: Self.key("x"), now: Self.start)
        #expect(step15 == .take(amount: 50, minimumBalance: 800))
        // Holds are in flight on the lease: it stays, and this hold goes to the database.
        let step16 = leases.took(tenant: 1, amount: 50, balance: nil, hold: Self.hold(5), key: Self.key("x"), now: Self.start)
        #expect(step16 == .database)
        for index in 2...9 { leases.settled(Self.key("r\(index)"), .charged(cost: 4), now: Self.start) }
        #expect(leases.tenants[1]?.leased == 8)
        // Nothing in flight now, and 8 left that cannot cover 10: return it, then hold in the database.
        let step17 = leases.admit(Self.hold(10), key: Self.key("y"), now: Self.start)
        #expect(step17 == .returnLease)
        let step18 = leases.admit(Self.hold(10), key: Self.key("z"), now: Self.start)
        #expect(step18 == .database)
        leases.returned(tenant: 1)
        #expect(leases.tenants[1]?.leased == 0)
        let step19 = leases.admit(Self.hold(10), key: Self.key("w"), now: Self.start)
        #expect(step19 == .database)
    }

    @Test("a settlement that failed or wrote nothing makes the lease suspect: nothing more on it, and it is returned when idle")
    func suspect() {
        for outcome in [Leases.Settlement.failed, .refused] {
            var leases = Self.leased()
            let step20 = leases.admit(Self.hold(5), key: Self.key("b"), now: Self.start)
            #expect(step20 == .held(balance: 990))
            leases.settled(Self.key("a"), outcome, now: Self.start)
            #expect(leases.tenants[1]?.suspect == true)
            #expect(leases.tenants[1]?.leased == 50, "what the row holds is not known: nothing is subtracted")
            // "b" is still in flight: the lease can be neither used nor returned.
            let step21 = leases.admit(Self.hold(5), key: Self.key("c"), now: Self.start)
            #expect(step21 == .database)
            let step22 = leases.due(now: Self.start + .seconds(5))
            #expect(step22.isEmpty)
            leases.settled(Self.key("b"), .charged(cost: 5), now: Self.start)
            let step23 = leases.due(now: Self.start)
            #expect(step23 == [1], "suspect leases go back at once")
            let step24 = leases.due(now: Self.start)
            #expect(step24.isEmpty, "and only once")
            leases.returned(tenant: 1)
            #expect(leases.tenants[1] == nil)
        }
    }

    @Test("an idle lease goes back after idleReturn; a lease in use stays; all goes back at shutdown")
    func idle() {
        var leases = Self.leased()
        _ = leases.admit(Self.hold(5), key: Self.key("b", tenant: 2), now: Self.start)
        _ = leases.took(tenant: 2, amount: 50, balance: 950, hold: Self.hold(5), key: Self.key("b", tenant: 2), now: Self.start)
        let step25 = leases.due(now: Self.start + .seconds(10))
        #expect(step25.isEmpty, "both have holds in flight")
        _ = leases.released(Self.key("a"), now: Self.start)
        let step26 = leases.due(now: Self.start + .milliseconds(500))
        #expect(step26.isEmpty)
        let step27 = leases.due(now: Self.start + .seconds(1))
        #expect(step27 == [1])
        leases.returned(tenant: 1)
        #expect(leases.hasLeases)
        _ = leases.released(Self.key("b", tenant: 2), now: Self.start)
        let step28 = leases.due(now: Self.start, all: true)
        #expect(step28 == [2])
        leases.returned(tenant: 2)
        #expect(!leases.hasLeases)
    }

    @Test("a lease spent to the last micro-credit still has its row, which goes back (is deleted) when idle")
    func spentLease() {
        var leases = Self.leased()
        leases.settled(Self.key("a"), .charged(cost: 50), now: Self.start)
        #expect(leases.tenants[1]?.leased == 0)
        #expect(leases.hasLeases)
        let due = leases.due(now: Self.start + .seconds(1))
        #expect(due == [1])
        leases.returned(tenant: 1)
        #expect(!leases.hasLeases && leases.tenants[1] == nil)
    }

    @Test("a hold that comes while an idle lease is being returned goes to the database, never onto the row on its way out")
    func holdDuringReturn() {
        var leases = Self.leased()
        _ = leases.released(Self.key("a"), now: Self.start)
        let due = leases.due(now: Self.start + .seconds(1))
        #expect(due == [1])
        // The return's write is under way: 50 still look leased, but the row is going.
        let during = leases.admit(Self.hold(5), key: Self.key("late"), now: Self.start + .seconds(1))
        #expect(during == .database)
        #expect(leases.hold(Self.key("late")) == nil && leases.held(tenant: 1) == (0, 0))
        leases.returned(tenant: 1)
        // Afterwards the tenant starts over with a new lease.
        let after = leases.admit(Self.hold(5), key: Self.key("next"), now: Self.start + .seconds(2))
        #expect(after == .take(amount: 50, minimumBalance: 800))
    }

    @Test("a return that failed leaves the lease usable again, and it is returned on the next tick")
    func returnFailedUsable() {
        var leases = Self.leased()
        _ = leases.released(Self.key("a"), now: Self.start)
        _ = leases.due(now: Self.start, all: true)
        leases.returned(tenant: 1, returned: false)
        let again = leases.admit(Self.hold(5), key: Self.key("b"), now: Self.start)
        #expect(again == .held(balance: 995))
    }

    @Test("a return that failed keeps the lease, to be returned on the next tick")
    func returnFailed() {
        var leases = Self.leased()
        _ = leases.released(Self.key("a"), now: Self.start)
        let step29 = leases.due(now: Self.start, all: true)
        #expect(step29 == [1])
        leases.returned(tenant: 1, returned: false)
        #expect(leases.tenants[1]?.leased == 50)
        let step30 = leases.due(now: Self.start, all: true)
        #expect(step30 == [1])
    }

    @Test("a failed lease write leaves nothing behind; the same request id twice is held once")
    func takeFailedAndDuplicates() {
        var leases = Leases(policy: Self.policy)
        let step31 = leases.admit(Self.hold(5), key: Self.key("a"), now: Self.start)
        #expect(step31 == .take(amount: 50, minimumBalance: 800))
        leases.takeFailed(tenant: 1)
        let step32 = leases.admit(Self.hold(5), key: Self.key("a"), now: Self.start)
        #expect(step32 == .take(amount: 50, minimumBalance: 800))
        let step33 = leases.took(tenant: 1, amount: 50, balance: 950, hold: Self.hold(5), key: Self.key("a"), now: Self.start)
        #expect(
            step33 == .held(balance: 995)
        )
        let step34 = leases.admit(Self.hold(5), key: Self.key("a"), now: Self.start)
        #expect(step34 == .database, "the database refuses it as a duplicate")
        #expect(leases.held(tenant: 1) == (5, 1))
    }

    @Test("lease sizes saturate instead of overflowing")
    func saturates() {
        var leases = Leases(policy: CreditLeasePolicy(holdsPerLease: 1_000_000))
        let step35 = leases.admit(Self.hold(Int64.max / 2), key: Self.key("a"), now: Self.start)
        #expect(step35 == .take(amount: .max, minimumBalance: .max))
    }
}
