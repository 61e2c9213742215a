import Testing

@testable import CortexCore

@Suite("Strict JSON parser")
struct JSONParserTests {
    @Test(
        "valid documents parse to the expected values",
        arguments: [
            (
                #"{"a":[1,-2.5,1e3,0,-0,true,false,null,"x"]}"#,
                JSONValue.object([
                    (
                        "a",
                        .array([
                            .number(1), .number(-2.5), .number(1000), .number(0), .number(0), .bool(true), .bool(false), .null,
                            .string("x"),
                        ])
                    )
                ])
            ),
            (#" [ ] "#, .array([])),
            (#"{}"#, .object([])),
            (#""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#, .string("\"\\/\u{08}\u{0C}\n\r\té😀")),
            (#"12345678901234567890"#, .number(12_345_678_901_234_567_168)),
            (#"0.1"#, .number(0.1)),
            (#"-123456789012345"#, .number(-123_456_789_012_345)),
            (#""é😀""#, .string("é😀")),
        ]
    )
    func valid(text: String, expected: JSONValue) throws {
        #expect(try JSONParser.parse(Array(text.utf8)) == expected)
    }

    @Test(
        "invalid documents are refused",
        arguments: [
            "", "{", "[1,]", "{\"a\":1,}", "[01]", "[1.]", "[.5]", "[+1]", "[NaN]", "[Infinity]", "[1e999]", "[-]", "[1e]",
            "tru", "nul", "\"abc", "\"a\u{01}b\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "{a:1}", "[1] [2]",
            "{\"a\" 1}", String(repeating: "[", count: 65) + String(repeating: "]", count: 65),
        ]
    )
    func invalid(text: String) {
        #expect(throws: JSONParser.Failure.self) {
            try JSONParser.parse(Array(text.utf8))
        }
    }

    @Test("bytes that are not UTF-8 are refused")
    func invalidUTF8() {
        #expect(throws: JSONParser.Failure.self) {
            try JSONParser.parse([UInt8(ascii: "\""), 0xFF, 0xFE, UInt8(ascii: "\"")])
        }
    }

    @Test("64 levels of nesting are accepted")
    func depthLimit() throws {
        let text = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        _ = try JSONParser.parse(Array(text.utf8))
    }

    @Test(
        "numbers parse exactly as Swift's Double parser does",
        arguments: ["3.141592653589793", "1e-300", "2.2250738585072014e-308", "9007199254740993", "-0.000001", "123.456e7"])
    func numbers(text: String) throws {
        #expect(try JSONParser.parse(Array(text.utf8)) == .number(Double(text)!))
    }
}

@Suite("JSON member text")
struct JSONMemberTextTests {
    @Test("each top-level member's value text comes back exactly as written: big integers, spacing, escapes, nesting")
    func memberText() throws {
        let document = #"{ "seed" : 9007199254740993, "stop":["\n\n", "é"] ,"x":{"a": [1, {"b":null}]},"n":-0.10e1,"s":"q\"\u00e9"}"#
        let bytes = Array(document.utf8)
        let (value, texts) = try bytes.withUnsafeBytes { try JSONParser.parseKeepingMemberText($0) }
        #expect(texts == ["9007199254740993", #"["\n\n", "é"]"#, #"{"a": [1, {"b":null}]}"#, "-0.10e1", #""q\"\u00e9""#])
        // The values are parsed as usual alongside (the seed rounded, as a double must).
        #expect(value["seed"] == .number(9_007_199_254_740_992) && value["s"] == .string("q\"é"))
        // Only the top level is recorded; a document that is not an object has none.
        #expect(try Array("[1,{\"a\":2}]".utf8).withUnsafeBytes { try JSONParser.parseKeepingMemberText($0) }.memberText.isEmpty)
        #expect(throws: JSONParser.Failure.self) {
            try Array(#"{"a":1,}"#.utf8).withUnsafeBytes { try JSONParser.parseKeepingMemberText($0) }
        }
    }

    @Test("a parsed value written back reads as the same value")
    func writtenBack() throws {
        let document = #"{"a":[1,-2.5,1e-7,true,false,null,"x\n\"y"],"b":{"c":{}},"d":[]}"#
        let value = try JSONParser.parse(Array(document.utf8))
        let text = JSONWriter.text(of: value)
        #expect(try JSONParser.parse(Array(text.utf8)) == value)
        #expect(text == #"{"a":[1,-2.5,1e-07,true,false,null,"x\n\"y"],"b":{"c":{}},"d":[]}"#)
    }
}
