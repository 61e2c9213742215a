import Foundation

/// Text that may hold a URL with a password (`postgres://user:secret@host/db`,
/// `redis://:secret@host:6379`), made safe for logs, errors and status pages.
public enum RedactedURL {
    /// `text` with the password of its URL replaced by `***`; anything else unchanged.
    ///
    /// Works on the text, not on a parsed URL, so a malformed URL (the kind an error message
    /// is about) is redacted too.
    public static func redacting(_ text: String) -> String {
        guard let password = passwordRange(in: text) else { return text }
        return String(text[..<password.lowerBound]) + "***" + String(text[password.upperBound...])
    }

    /// The password of the URL in `text` (`secret` in `redis://:secret@host`), if it has one.
    public static func password(in text: String) -> String? {
        passwordRange(in: text).map { String(text[$0]) }
    }

    private static func passwordRange(in text: String) -> Range<String.Index>? {
        guard let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].lastIndex(of: "@") else { return nil }
        let userInfo = text[scheme.upperBound..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return nil }
        return text.index(after: colon)..<at
    }
}
