import Testing

@testable import CortexCore

@Suite("API keys")
struct APIKeyTests {
    @Test("generated keys have the documented shape and display prefix")
    func shape() {
        let key = APIKey.generate()
        let parts = key.text.split(separator: "_")
        #expect(parts.count == 3)
        #expect(parts[0] == "ctx")
        #expect(parts[1].count == APIKey.prefixLength)
        #expect(parts[2].count == APIKey.secretLength)
        #expect(key.text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" })
        #expect(key.displayPrefix == "ctx_\(parts[1])")
        #expect(APIKey.displayPrefix(of: key.text) == key.displayPrefix)
        #expect(!key.displayPrefix.contains(parts[2]))
    }

    @Test("keys from elsewhere show only their first six characters")
    func foreignPrefix() {
        #expect(APIKey.displayPrefix(of: "demo-api-key-123") == "demo-a")
    }

    @Test("keys do not repeat, and every base62 character appears")
    func randomness() {
        var seen = Set<String>()
        var characters = Set<Character>()
        for _ in 0..<2000 {
            let key = APIKey.generate()
            seen.insert(key.text)
            characters.formUnion(key.text.split(separator: "_")[2])
        }
        #expect(seen.count == 2000)
        #expect(characters.count == 62)
    }

    @Test(
        "implausible presented keys are refused before any lookup",
        arguments: ["short", String(repeating: "a", count: 257), "has space in it", "tab\there-key", "ключ-ключ-ключ"])
    func implausible(key: String) {
        #expect(!APIKey.isPlausible(key[...]))
    }

    @Test("constant-time equality is equality")
    func constantTime() {
        #expect(ConstantTime.equals("abcdef", "abcdef"))
        #expect(!ConstantTime.equals("abcdef", "abcdeg"))
        #expect(!ConstantTime.equals("abcdef", "abcde"))
        #expect(!ConstantTime.equals("", "a"))
        #expect(ConstantTime.equals("", ""))
    }

    @Test("scope lists parse")
    func scopes() {
        #expect(Scope.parseList("infer") == [.infer])
        #expect(Scope.parseList("infer, admin") == [.infer, .admin])
        #expect(Scope.parseList("admin") == [.admin])
    }

    @Test("unknown or empty scope lists are refused", arguments: ["", "read", "infer,write", ","])
    func badScopes(text: String) {
        #expect(Scope.parseList(text) == nil)
    }
}
