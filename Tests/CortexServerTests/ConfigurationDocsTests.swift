import Foundation
import Testing

@testable import CortexServer

/// `docs/configuration.md` and the declared settings say the same thing.
@Suite("Configuration docs")
struct ConfigurationDocsTests {
    /// The settings table's rows: YAML key and the first environment variable named.
    static func documented() throws -> [(yaml: String, environment: String, defaultValue: String)] {
        let text = try String(contentsOfFile: Repository.path("docs/configuration.md"), encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count > 3, cells[1].hasPrefix("`"), let variable = cells[2].split(separator: "`").first else { return nil }
            return (cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`")), String(variable), cells[3])
        }
    }

    @Test("every declared setting is documented under its YAML key and variable, and every documented one is declared")
    func inSync() throws {
        let documented = try Self.documented()
        #expect(documented.count > 40, "the table was found")
        let declared = CortexConfiguration.settings.map { (yaml: $0.key, environment: $0.environment) }
        for setting in declared {
            #expect(
                documented.contains { $0.yaml == setting.yaml && $0.environment == setting.environment },
                "\(setting.environment) (\(setting.yaml)) is declared but not in docs/configuration.md")
        }
        // Read by the loader itself rather than the scalar table: lists, maps and per-model values.
        let structured: Set<String> = [
            "MODEL_PATH", "MODEL_VERSION", "MODEL_PRICES", "RATE_LIMIT_OVERRIDES", "API_KEYS",
        ]
        for row in documented where !structured.contains(row.environment) {
            #expect(
                declared.contains { $0.yaml == row.yaml && $0.environment == row.environment },
                "docs/configuration.md documents \(row.environment) (\(row.yaml)), which is not declared")
        }
        for variable in structured {
            #expect(documented.contains { $0.environment == variable }, "\(variable) is not documented")
        }
        // Aliases are named in their setting's row; the family of tenant keys has a section of its own.
        let text = try String(contentsOfFile: Repository.path("docs/configuration.md"), encoding: .utf8)
        for alias in CortexConfiguration.settings.flatMap(\.aliases) + ["API_KEY_<TENANT>", "API_KEY_<TENANT>_FILE", "traffic.endpoints"] {
            #expect(text.contains("`\(alias)`"), "\(alias) is not documented")
        }
    }

    @Test(".env.example lists every setting, each value it writes is the declared default, and it names nothing undocumented")
    func environmentExample() throws {
        let text = try String(contentsOfFile: Repository.path(".env.example"), encoding: .utf8)
        var listed: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("# ") && line.contains("=") {
            let entry = line.dropFirst(2)
            let name = String(entry.prefix { $0 != "=" })
            guard name.allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }), !name.isEmpty else { continue }
            listed[name] = String(entry.dropFirst(name.count + 1))
        }
        let documented = try Self.documented().map(\.environment)
        for setting in CortexConfiguration.settings {
            #expect(listed[setting.environment] != nil, "\(setting.environment) is not in .env.example")
        }
        var checked = 0
        for (name, value) in listed where name != "API_KEY_EXPERTCO" {
            #expect(documented.contains(name), "\(name) in .env.example is not documented")
            guard !value.contains("(default:"), let setting = CortexConfiguration.settings.first(where: { $0.environment == name }) else {
                continue
            }
            var configuration = CortexConfiguration()
            #expect(setting.apply(&configuration, [value]), "\(name)=\(value) is not accepted")
            #expect(configuration == CortexConfiguration(), "\(name)=\(value) is not the default")
            checked += 1
        }
        #expect(checked > 50)
    }

    @Test("a default the docs write as a value is the declared default: read through the setting, it changes nothing")
    func defaults() throws {
        var checked = 0
        for row in try Self.documented() {
            guard row.defaultValue.hasPrefix("`"), let setting = CortexConfiguration.settings.first(where: { $0.key == row.yaml }) else {
                continue
            }
            let value = String(row.defaultValue.dropFirst().prefix { $0 != "`" })
            var configuration = CortexConfiguration()
            #expect(setting.apply(&configuration, [value]), "\(row.environment)'s documented default \(value) is not accepted")
            #expect(
                configuration == CortexConfiguration(),
                "\(row.environment): docs say \(value), the declared default is \(setting.show(CortexConfiguration()))")
            checked += 1
        }
        #expect(checked > 40)
    }

    @Test("the newest entry of docs/CHANGELOG.md is the version the build reports")
    func changelog() throws {
        let text = try String(contentsOfFile: Repository.path("docs/CHANGELOG.md"), encoding: .utf8)
        let newest = try #require(text.split(separator: "\n").first { $0.hasPrefix("## ") })
        let version = newest.dropFirst(3).prefix { $0 != " " }
        #expect(version == CortexVersion.current[...], "docs/CHANGELOG.md starts at \(version), the build is \(CortexVersion.current)")
    }
}
