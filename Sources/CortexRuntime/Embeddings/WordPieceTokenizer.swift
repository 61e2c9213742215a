package import CortexCore
import Foundation

/// BERT's tokenizer, as Hugging Face's `tokenizers` runs it from a `tokenizer.json` whose model
/// is `WordPiece`: the BERT normalizer (control characters dropped, whitespace made spaces, CJK
/// ideographs set apart, accents stripped and text lower-cased when the file says so), the BERT
/// pre-tokenizer (split on whitespace and around each punctuation character), then WordPiece
/// (the longest piece of the vocabulary first, `##` before the pieces that continue a word, a
/// word with a piece missing or over 100 characters as `[UNK]`), between `[CLS]` and `[SEP]`.
///
/// Parity with `tokenizers` is a test (`EmbeddingTests`), on text with accents, CJK, punctuation,
/// emoji and long words.
package struct WordPieceTokenizer: Sendable {
    private let vocabulary: [String: Int32]
    let lowercase: Bool
    let stripAccents: Bool
    let cleanText: Bool
    let handleChineseCharacters: Bool
    let continuingPrefix: String
    let maximumCharactersPerWord: Int
    package let unknown: Int32
    package let classifier: Int32
    package let separator: Int32
    package let padding: Int32

    /// Why a tokenizer file cannot be used.
    package struct Failure: Error, CustomStringConvertible {
        package var description: String
    }

    /// Reads a `tokenizer.json` (Hugging Face's format) with a `WordPiece` model.
    ///
    /// - Throws: ``Failure`` naming what is missing or unsupported.
    package init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(description: "cannot read \(path)") }
        let json: JSONValue
        do { json = try JSONParser.parse(data) } catch { throw Failure(description: "\(path) is not JSON: \(error.reason)") }
        let model = json["model"]
        guard model?["type"]?.stringValue == "WordPiece", case .object(let entries)? = model?["vocab"] else {
            throw Failure(
                description:
                    "\(path): only WordPiece tokenizers (BERT's) are supported; its model is \(model?["type"]?.stringValue ?? "missing")")
        }
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(entries.count)
        for (token, id) in entries {
            guard let id = id.intValue, let small = Int32(exactly: id) else {
                throw Failure(description: "\(path): the id of '\(token)' is not an integer")
            }
            vocabulary[token] = small
        }
        let normalizer = json["normalizer"]
        if let type = normalizer?["type"]?.stringValue, type != "BertNormalizer" {
            throw Failure(description: "\(path): only BERT's normalizer is supported; it has \(type)")
        }
        self.vocabulary = vocabulary
        self.lowercase = normalizer?["lowercase"]?.boolValue ?? true
        // `null` follows lower-casing, as in `tokenizers`.
        self.stripAccents = normalizer?["strip_accents"]?.boolValue ?? lowercase
        self.cleanText = normalizer?["clean_text"]?.boolValue ?? true
        self.handleChineseCharacters = normalizer?["handle_chinese_chars"]?.boolValue ?? true
        self.continuingPrefix = model?["continuing_subword_prefix"]?.stringValue ?? "##"
        self.maximumCharactersPerWord = model?["max_input_chars_per_word"]?.intValue ?? 100
        func special(_ token: String) throws -> Int32 {
            guard let id = vocabulary[token] else { throw Failure(description: "\(path): the vocabulary has no \(token)") }
            return id
        }
        self.unknown = try special(model?["unk_token"]?.stringValue ?? "[UNK]")
        self.classifier = try special("[CLS]")
        self.separator = try special("[SEP]")
        self.padding = try special("[PAD]")
    }

    /// The ids of `text`: `[CLS]`, its pieces (the first `maximumLength - 2`), `[SEP]`.
    package func encode(_ text: String, maximumLength: Int) -> [Int32] {
        var ids: [Int32] = [classifier]
        let room = max(maximumLength - 2, 0)
        words: for word in words(normalized(text)) {
            for id in pieces(word) {
                guard ids.count - 1 < room else { break words }
                ids.append(id)
            }
        }
        ids.append(separator)
        return ids
    }

    /// The BERT normalizer's text.
    func normalized(_ text: String) -> [Unicode.Scalar] {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if cleanText {
                if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
                if Self.isWhitespace(scalar) {
                    scalars.append(" ")
                    continue
                }
            }
            if handleChineseCharacters, Self.isChinese(scalar) {
                scalars.append(" ")
                scalars.append(scalar)
                scalars.append(" ")
            } else {
                scalars.append(scalar)
            }
        }
        if stripAccents {
            // Canonical decomposition, without the combining marks; kept decomposed, as `tokenizers` does.
            var text = String()
            text.unicodeScalars.append(contentsOf: scalars)
            scalars = text.decomposedStringWithCanonicalMapping.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if lowercase {
            scalars = scalars.flatMap { scalar -> [Unicode.Scalar] in
                // One scalar at a time, without context (no final sigma), as Rust's `char::to_lowercase`.
                let mapping = scalar.properties.lowercaseMapping
                return mapping.unicodeScalars.count == 1 && mapping.unicodeScalars.first == scalar
                    ? [scalar] : Array(mapping.unicodeScalars)
            }
        }
        return scalars
    }

    /// The BERT pre-tokenizer's words: split on whitespace, each punctuation character a word.
    func words(_ scalars: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for scalar in scalars {
            if scalar.properties.isWhitespace {
                if !current.isEmpty { words.append(current) }
                current = []
            } else if Self.isPunctuation(scalar) {
                if !current.isEmpty { words.append(current) }
                words.append([scalar])
                current = []
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// WordPiece: the longest known piece first; the whole word unknown when a piece is missing.
    func pieces(_ word: [Unicode.Scalar]) -> [Int32] {
        guard word.count <= maximumCharactersPerWord else { return [unknown] }
        var ids: [Int32] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int32?
            while start < end {
                var piece = start > 0 ? continuingPrefix : ""
                piece.unicodeScalars.append(contentsOf: word[start..<end])
                if let id = vocabulary[piece] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let found else { return [unknown] }
            ids.append(found)
            start = end
        }
        return ids
    }

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\t" || scalar == "\n" || scalar == "\r" || scalar.properties.isWhitespace
    }

    /// Unicode's "other" categories (control, format, unassigned, private use), but tabs and newlines.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// ASCII punctuation (symbols such as `$`, `+`, `^` included), and Unicode's punctuation categories.
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if (33...47).contains(value) || (58...64).contains(value) || (91...96).contains(value) || (123...126).contains(value) {
            return true
        }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation,
            .otherPunctuation:
            return true
        default: return false
        }
    }

    /// The CJK ideograph blocks BERT sets apart.
    static func isChinese(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F, 0x2B820...0x2CEAF,
            0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default: return false
        }
    }
}
