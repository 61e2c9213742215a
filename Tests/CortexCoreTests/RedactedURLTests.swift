import CortexCore
import Testing

@Suite("Passwords in URLs are redacted")
struct RedactedURLTests {
    @Test(
        "the password goes, the rest stays; text without one is unchanged",
        arguments: [
            ("postgres://cortex:s3cret@db:5432/cortex?sslmode=require", "postgres://cortex:***@db:5432/cortex?sslmode=require"),
            ("redis://:s3cret@redis:6379/1", "redis://:***@redis:6379/1"),
            ("redis://default:p@ss@redis:6379", "redis://default:***@redis:6379"),
            ("rediss://:s3cret@redis host:6379", "rediss://:***@redis host:6379"),
            ("redis://user@redis:6379", "redis://user@redis:6379"),
            ("redis://redis:6379", "redis://redis:6379"),
            ("sqlite:data/cortex.db", "sqlite:data/cortex.db"),
            ("", ""),
        ])
    func redacting(input: String, expected: String) {
        #expect(RedactedURL.redacting(input) == expected)
    }
}

extension RedactedURLTests {
    @Test("the password itself, for the secrets a log must never carry")
    func password() {
        #expect(RedactedURL.password(in: "redis://default:p@ss@redis:6379") == "p@ss")
        #expect(RedactedURL.password(in: "postgres://cortex:s3cret@db/cortex") == "s3cret")
        #expect(RedactedURL.password(in: "redis://user@redis:6379") == nil)
        #expect(RedactedURL.password(in: "sqlite:data/cortex.db") == nil)
    }
}

@Suite("Configured secrets are taken out of text")
struct SecretRedactorTests {
    @Test("every occurrence of each secret goes, the longest first; short and empty ones are not searched for")
    func redact() {
        let redactor = SecretRedactor(secrets: ["sk-live-0123456789", "sk-live-0123456789-extra", "short", ""])
        #expect(
            redactor.redact("Bearer sk-live-0123456789-extra and sk-live-0123456789, twice: sk-live-0123456789")
                == "Bearer [redacted] and [redacted], twice: [redacted]")
        #expect(redactor.redact("a short note") == "a short note")
        #expect(redactor.redact("nothing here") == "nothing here")
        #expect(
            String(decoding: redactor.redact(Array(#"{"error":"Bearer sk-live-0123456789"}"#.utf8)), as: UTF8.self)
                == #"{"error":"Bearer [redacted]"}"#)
        // In bytes: at the very start and end, and a near miss (the secret less its last character) left alone.
        let bytes = { (text: String) in String(decoding: redactor.redact(Array(text.utf8)), as: UTF8.self) }
        #expect(bytes("sk-live-0123456789 at both ends sk-live-0123456789") == "[redacted] at both ends [redacted]")
        #expect(bytes("sk-live-012345678 is not it, ssk-live-0123456789x is") == "sk-live-012345678 is not it, s[redacted]x is")
        #expect(bytes("") == "")
        #expect(SecretRedactor(secrets: ["tiny"]).isEmpty)
        #expect(!redactor.isEmpty)
    }
}
