import Testing

@testable import CortexCore

@Suite("Credits are exact integers of micro-credits")
struct CreditsTests {
    @Test(
        "decimal text parses exactly",
        arguments: [
            ("0", 0), ("1", 1_000_000), ("0.5", 500_000), ("1.000001", 1_000_001), ("-3.25", -3_250_000),
            ("12.345678", 12_345_678), ("9223372036854.775807", Int64.max), ("000.1", 100_000),
        ] as [(String, Int64)]
    )
    func parses(text: String, micro: Int64) {
        #expect(Credits(decimal: text)?.microcredits == micro)
    }

    @Test(
        "anything else is refused",
        arguments: ["", "-", ".", "1.", ".5", "1.0000001", "1e3", " 1", "1 ", "0x10", "1,5", "--1", "1.2.3", "9223372036854.775808", "NaN"]
    )
    func refuses(text: String) {
        #expect(Credits(decimal: text) == nil)
    }

    @Test(
        "canonical text drops trailing zeros and round-trips", arguments: [0, 1, 1_500_000, 2_000_000, -1, -1_250_000, Int64.max, 123_456])
    func formats(micro: Int64) {
        let credits = Credits(microcredits: micro)
        #expect(Credits(decimal: credits.description) == credits)
        #expect(!credits.description.hasSuffix("0") || !credits.description.contains("."))
    }

    @Test("a tenth of a credit ten times is exactly one credit, unlike Double")
    func noDrift() throws {
        let tenth = try #require(Credits(decimal: "0.1"))
        var total = Credits.zero
        for _ in 0..<10 { total = try #require(total.adding(tenth)) }
        #expect(total == Credits(decimal: "1"))
        #expect(total.description == "1")
        #expect((0..<10).reduce(0.0) { sum, _ in sum + 0.1 } != 1.0, "the reason credits are not Double")
    }

    @Test("arithmetic reports overflow instead of wrapping")
    func overflow() {
        let max = Credits(microcredits: .max)
        #expect(max.adding(Credits(microcredits: 1)) == nil)
        #expect(Credits(microcredits: .min).subtracting(Credits(microcredits: 1)) == nil)
        #expect(max.multiplied(by: 2) == nil)
        #expect(Credits(microcredits: 3).multiplied(by: 4) == Credits(microcredits: 12))
    }
}
