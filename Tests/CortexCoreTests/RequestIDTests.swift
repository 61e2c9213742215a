import Testing

@testable import CortexCore

@Suite("Request id rules")
struct RequestIDRuleTests {
    @Test(
        "sane ids pass unchanged",
        arguments: ["abc", "0af7651916cd43dd8448eb211c80319c", "client-42.abc", "urn:req/7_x", String(repeating: "a", count: 128)]
    )
    func sane(id: String) {
        #expect(RequestID.sanitized(id[...]) == id)
    }

    @Test(
        "ids that are empty, too long or carry other characters are refused",
        arguments: ["", String(repeating: "a", count: 129), "a b", "a\nb", "é", "a\"b", "<script>"])
    func insane(id: String) {
        #expect(RequestID.sanitized(id[...]) == nil)
    }

    @Test("generated ids are 32 lowercase hex characters from the generator")
    func generated() {
        var generator = FixedGenerator(values: [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210])
        #expect(RequestID.generate(using: &generator) == "0123456789abcdeffedcba9876543210")
    }

    @Test("the generator never repeats within a process and keeps the W3C form")
    func generatorIsUnique() {
        let generator = RequestIDGenerator()
        var seen = Set<String>()
        for _ in 0..<100_000 {
            let id = generator.next()
            #expect(id.count == 32)
            seen.insert(id)
        }
        #expect(seen.count == 100_000)
        #expect(RequestIDGenerator().next().prefix(16) != RequestIDGenerator().next().prefix(16), "a random start per generator")
    }

    @Test("one generator's ids sort in the order they were made (first half counts up), their second half is scattered")
    func generatorOrder() {
        let generator = RequestIDGenerator()
        let ids = (0..<10_000).map { _ in generator.next() }
        let high = ids.map { UInt64($0.prefix(16), radix: 16) ?? 0 }
        // Consecutive from a random start (a start within 10,000 of the top would wrap: 1 in 2^50).
        #expect(zip(high, high.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
        #expect(ids.sorted() == ids || high.contains(.max))
        // The second half: about half its 64 bits change from one id to the next.
        let low = ids.map { UInt64($0.suffix(16), radix: 16) ?? 0 }
        let flipped = zip(low, low.dropFirst()).map { ($0 ^ $1).nonzeroBitCount }
        let mean = Double(flipped.reduce(0, +)) / Double(flipped.count)
        #expect((28...36).contains(mean), "\(mean) bits change on average")
    }

    struct FixedGenerator: RandomNumberGenerator {
        var values: [UInt64]
        mutating func next() -> UInt64 { values.removeFirst() }
    }
}
