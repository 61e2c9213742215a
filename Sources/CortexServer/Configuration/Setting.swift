import CortexCore
import Foundation

extension CortexConfiguration {
    /// One operator setting, declared once: its YAML key, its environment variable (and the older
    /// names it also answers to), what it accepts, whether it holds a secret, where its value goes
    /// and how `cortex config check` shows it. Loading, error messages, the listing, the log
    /// redactor and the docs check all read this declaration; nothing repeats it.
    struct Setting: Sendable {
        /// One value, or a list (comma-separated in a variable, a YAML list or mapping in the file).
        enum Form: Sendable { case scalar, list }

        /// What a setting keeps from the redactor and the listing.
        enum Secrecy: Sendable {
            case none
            /// The whole value is a secret: shown as set or not, or counted.
            case value
            /// A URL whose password is a secret: shown with `***`.
            case password
        }

        var key: String
        var environment: String
        /// Names read when `environment` is unset, first found wins (the multi-tenant ops API's `API_ADMIN_KEY`).
        var aliases: [String] = []
        var accepted: String
        var form = Form.scalar
        var secrecy = Secrecy.none
        /// Stores `values` (trimmed, empty list items dropped); `false` when they are not what `accepted` says.
        var apply: @Sendable (inout CortexConfiguration, [String]) -> Bool
        /// The value in a configuration, as `config check` prints it; secrets never appear.
        var show: @Sendable (CortexConfiguration) -> String
        /// The secret text the value holds, for the log redactor.
        var secrets: @Sendable (CortexConfiguration) -> [String]

        /// Where a setting's value goes.
        typealias Path<Value> = any (WritableKeyPath<CortexConfiguration, Value> & Sendable)

        /// The variable names that set it, `environment` first.
        var names: [String] { [environment] + aliases }

        /// A setting read as one value of type `Value`.
        static func scalar<Value: Sendable>(
            _ key: String, _ environment: String, _ path: Path<Value>, accepted: String,
            aliases: [String] = [], secrecy: Secrecy = .none, show: @escaping @Sendable (Value) -> String = { "\($0)" },
            parse: @escaping @Sendable (String) -> Value?
        ) -> Setting {
            Setting(
                key: key, environment: environment, aliases: aliases, accepted: accepted, form: .scalar, secrecy: secrecy,
                apply: { config, values in
                    guard values.count == 1, let value = parse(values[0]) else { return false }
                    config[keyPath: path] = value
                    return true
                },
                show: { show($0[keyPath: path]) },
                secrets: { _ in [] }
            ).hiding(path)
        }

        /// A setting whose value is optional (unset by default); `parse` returning `nil` is a bad value, not unset.
        static func optional<Value: Sendable>(
            _ key: String, _ environment: String, _ path: Path<Value?>, accepted: String, aliases: [String] = [],
            secrecy: Secrecy = .none, show: @escaping @Sendable (Value?) -> String, parse: @escaping @Sendable (String) -> Value?
        ) -> Setting {
            scalar(key, environment, path, accepted: accepted, aliases: aliases, secrecy: secrecy, show: show) { text in
                parse(text).map { .some($0) }
            }
        }

        /// A setting read as a list.
        static func list<Value: Sendable>(
            _ key: String, _ environment: String, _ path: Path<Value>, accepted: String, aliases: [String] = [],
            secrecy: Secrecy = .none, show: @escaping @Sendable (Value) -> String, parse: @escaping @Sendable ([String]) -> Value?
        ) -> Setting {
            Setting(
                key: key, environment: environment, aliases: aliases, accepted: accepted, form: .list, secrecy: secrecy,
                apply: { config, values in
                    guard let value = parse(values) else { return false }
                    config[keyPath: path] = value
                    return true
                },
                show: { show($0[keyPath: path]) },
                secrets: { _ in [] }
            ).hiding(path)
        }

        /// For a secret setting, a listing and a redactor that never show the value itself.
        private func hiding<Value>(_ path: Path<Value>) -> Setting {
            var setting = self
            switch secrecy {
            case .none: break
            case .value:
                setting.secrets = { config in Self.texts(config[keyPath: path]) }
                // A list's declared listing counts its items, which is not secret; a value shows as set or not.
                if form == .scalar {
                    setting.show = { config in Self.texts(config[keyPath: path]).isEmpty ? "not set" : "set" }
                }
            case .password:
                setting.secrets = { config in Self.texts(config[keyPath: path]).compactMap(RedactedURL.password(in:)) }
                let show = self.show
                setting.show = { RedactedURL.redacting(show($0)) }
            }
            return setting
        }

        /// The strings a value holds: itself, its elements, or nothing when `nil`.
        private static func texts(_ value: Any) -> [String] {
            let texts: [String] =
                switch value {
                case let text as String: [text]
                case let list as [String]: list
                case let database as Database:
                    if case .postgres(let url) = database { [url] } else { [] }
                default: []
                }
            return texts.filter { !$0.isEmpty }
        }

        static func integer(
            _ key: String, _ environment: String, _ path: Path<Int>, _ range: ClosedRange<Int>,
            what: String = "an integer"
        ) -> Setting {
            scalar(key, environment, path, accepted: "\(what) from \(range.lowerBound) to \(range.upperBound)") { text in
                Int(text).flatMap { range.contains($0) ? $0 : nil }
            }
        }

        static func number(
            _ key: String, _ environment: String, _ path: Path<Double>,
            _ range: ClosedRange<Double>, what: String = "seconds"
        ) -> Setting {
            scalar(
                key, environment, path, accepted: "\(what) from \(format(range.lowerBound)) to \(format(range.upperBound))", show: format
            ) { text in
                Double(text).flatMap { $0.isFinite && range.contains($0) ? $0 : nil }
            }
        }

        static func credits(
            _ key: String, _ environment: String, _ path: Path<Credits>, what: String = "credits"
        ) -> Setting {
            scalar(key, environment, path, accepted: "\(what), a decimal of at least 0 with at most 6 places", parse: nonNegativeCredits)
        }

        static func flag(_ key: String, _ environment: String, _ path: Path<Bool>) -> Setting {
            scalar(key, environment, path, accepted: "true or false") { text in
                switch text.lowercased() {
                case "true", "1", "yes", "on": true
                case "false", "0", "no", "off": false
                default: nil
                }
            }
        }

        /// One of an enumeration's raw values, case-insensitive; `synonyms` are other spellings.
        static func choice<Value: RawRepresentable<String> & CaseIterable & Sendable>(
            _ key: String, _ environment: String, _ path: Path<Value>,
            synonyms: [String: Value] = [:]
        ) -> Setting {
            let names = Value.allCases.map(\.rawValue)
            return scalar(key, environment, path, accepted: "one of \(names.joined(separator: ", "))", show: \.rawValue) { text in
                synonyms[text.lowercased()] ?? Value(rawValue: text.lowercased())
            }
        }

        /// An `http://` or `https://` base URL, kept without a trailing `/`.
        static func baseURL(_ key: String, _ environment: String, _ path: Path<String>)
            -> Setting
        {
            scalar(key, environment, path, accepted: "http://host:port or https://host:port", parse: parseBaseURL)
        }

        /// An `http://` or `https://` URL with a host and no query, without a trailing `/`.
        static func parseBaseURL(_ text: String) -> String? {
            parseURL(text).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        }

        /// An `http://` or `https://` URL with a host and no query, as given.
        static func parseURL(_ text: String) -> String? {
            guard let components = URLComponents(string: text), ["http", "https"].contains(components.scheme ?? ""),
                let host = components.host, !host.isEmpty, components.query == nil
            else { return nil }
            return text
        }

        /// A word without spaces of 1 to `limit` characters.
        static func word(
            _ key: String, _ environment: String, _ path: Path<String>, accepted: String,
            limit: Int = 256, secrecy: Secrecy = .none, aliases: [String] = []
        ) -> Setting {
            scalar(key, environment, path, accepted: accepted, aliases: aliases, secrecy: secrecy) { text in
                (1...limit).contains(text.count) && !text.contains(where: \.isWhitespace) ? text : nil
            }
        }

        static func modelName(_ key: String, _ environment: String, _ path: Path<String>)
            -> Setting
        {
            scalar(key, environment, path, accepted: "a model name: letters, digits, '-', '_' and '.'") { text in
                isValidModelName(text) ? text : nil
            }
        }

        /// `3600.0` as `3600`, `0.1` as `0.1`.
        static func format(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
        }

        static func nonNegativeCredits(_ text: String) -> Credits? {
            Credits(decimal: text).flatMap { $0 >= .zero ? $0 : nil }
        }
    }
}
