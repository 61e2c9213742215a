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
        #expect(Set(seen.map { $0.prefix(16) }).count == 1, "one random prefix per generator")
        #expect(RequestIDGenerator().next().prefix(16) != RequestIDGenerator().next().prefix(16))
    }

    struct FixedGenerator: RandomNumberGenerator {
        var values: [UInt64]
        mutating func next() -> UInt64 { values.removeFirst() }
    }
}
