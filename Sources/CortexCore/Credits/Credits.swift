/// An amount of credits, kept as an exact integer number of micro-credits (10⁻⁶ credit).
///
/// Prices, holds, balances and ledger entries are all `Credits`, so sums never drift the way
/// floating point does. Text uses up to six decimals: `"1.5"` is 1,500,000 micro-credits.
///
/// ```swift
/// let price = Credits(decimal: "0.25")!      // 250_000 micro-credits
/// let total = price.adding(price)            // Credits(microcredits: 500_000)
/// ```
public struct Credits: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Micro-credits per credit.
    public static let scale: Int64 = 1_000_000
    /// No credits.
    public static let zero = Credits(microcredits: 0)
    /// The most a balance (with what is held from it) can hold: 64-bit micro-credits,
    /// 9223372036854.775807 credits. Grants past it are refused rather than overflowing.
    public static let maximumBalance = Credits(microcredits: Int64.max)

    /// The amount in micro-credits; negative for debits.
    public var microcredits: Int64

    /// Creates an amount from micro-credits.
    public init(microcredits: Int64) {
        self.microcredits = microcredits
    }

    /// Parses a decimal amount such as `"12"`, `"0.5"` or `"-3.000001"`.
    ///
    /// Returns `nil` for anything else: more than six decimals, exponents, spaces, or a value
    /// outside what 64-bit micro-credits hold. No floating point is involved.
    public init?(decimal text: some StringProtocol) {
        var utf8 = Substring(text).utf8[...]
        let negative = utf8.first == UInt8(ascii: "-")
        if negative { utf8 = utf8.dropFirst() }
        guard !utf8.isEmpty else { return nil }
        var whole: Int64 = 0
        var fraction: Int64 = 0
        var fractionDigits = 0
        var seenDot = false
        var wholeDigits = 0
        for byte in utf8 {
            if byte == UInt8(ascii: "."), !seenDot {
                seenDot = true
                continue
            }
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            let digit = Int64(byte - UInt8(ascii: "0"))
            if seenDot {
                fractionDigits += 1
                guard fractionDigits <= 6 else { return nil }
                fraction = fraction * 10 + digit
            } else {
                wholeDigits += 1
                let (shifted, overflow1) = whole.multipliedReportingOverflow(by: 10)
                let (added, overflow2) = shifted.addingReportingOverflow(digit)
                guard !overflow1, !overflow2 else { return nil }
                whole = added
            }
        }
        guard wholeDigits > 0, !(seenDot && fractionDigits == 0) else { return nil }
        for _ in fractionDigits..<6 { fraction *= 10 }
        let (scaled, overflow1) = whole.multipliedReportingOverflow(by: Self.scale)
        let (total, overflow2) = scaled.addingReportingOverflow(fraction)
        guard !overflow1, !overflow2 else { return nil }
        self.microcredits = negative ? -total : total
    }

    /// The sum, or `nil` if it overflows.
    public func adding(_ other: Credits) -> Credits? {
        let (sum, overflow) = microcredits.addingReportingOverflow(other.microcredits)
        return overflow ? nil : Credits(microcredits: sum)
    }

    /// The difference, or `nil` if it overflows.
    public func subtracting(_ other: Credits) -> Credits? {
        let (difference, overflow) = microcredits.subtractingReportingOverflow(other.microcredits)
        return overflow ? nil : Credits(microcredits: difference)
    }

    /// This amount `count` times, or `nil` if it overflows.
    public func multiplied(by count: Int64) -> Credits? {
        let (product, overflow) = microcredits.multipliedReportingOverflow(by: count)
        return overflow ? nil : Credits(microcredits: product)
    }

    /// A thousandth of this amount, rounded up to the micro-credit: what a price per 1,000 units
    /// (tokens) comes to once multiplied by the count.
    public var thousandthRoundedUp: Credits {
        let (thousandths, remainder) = microcredits.quotientAndRemainder(dividingBy: 1000)
        return Credits(microcredits: thousandths + (remainder > 0 ? 1 : 0))
    }

    /// Canonical decimal text with no trailing zeros: `1.5`, `2`, `-0.000001`.
    public var description: String {
        let magnitude = microcredits.magnitude
        let whole = magnitude / UInt64(Self.scale)
        let fraction = magnitude % UInt64(Self.scale)
        var text = microcredits < 0 ? "-" : ""
        text += String(whole)
        if fraction != 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: 6 - digits.count) + digits
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        return text
    }

    public static func < (lhs: Credits, rhs: Credits) -> Bool {
        lhs.microcredits < rhs.microcredits
    }
}
