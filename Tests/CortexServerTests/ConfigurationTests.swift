import CortexCore
import CortexRuntime
import Foundation
import Logging
import Testing

@testable import CortexServer

@Suite("Configuration: YAML file, environment overrides, errors that name the key")
struct ConfigurationTests {
    @Test("embedded defaults")
    func defaults() throws {
        let config = try CortexConfiguration.load(file: nil, environment: [:])
        #expect(config.server.port == 8000)
        #expect(config.server.host == "127.0.0.1")
        #expect(config.log.level == .info)
        #expect(config.log.format == .json)
        #expect(config.database == .sqlite(path: CortexConfiguration.absolutePath("data/cortex.db")))
        #expect(config.models.map(\.name) == ["lead-scoring", "vA", "vB"])
    }

    @Test("every secret the settings hold is known, for the log redactor; nothing else is")
    func secrets() throws {
        let config = try CortexConfiguration.load(
            file: nil,
            environment: [
                "ADMIN_TOKEN": "admin-token-0123456789", "API_KEYS": "static-key-aaaaaaaa,static-key-bbbbbbbb",
                "DATABASE_URL": "postgres://cortex:db-password-1@127.0.0.1:5432/cortex",
                "REDIS_URL": "redis://:redis-password-1@127.0.0.1:6379/0",
                "LLM_PRIMARY_URL": "http://127.0.0.1:1", "LLM_PRIMARY_KIND": "openai", "LLM_PRIMARY_MODEL": "m",
                "LLM_PRIMARY_API_KEY": "sk-primary-0123456789",
            ])
        #expect(
            Set(config.secrets)
                == [
                    "admin-token-0123456789", "static-key-aaaaaaaa", "static-key-bbbbbbbb", "db-password-1", "redis-password-1",
                    "sk-primary-0123456789",
                ])
        #expect(try CortexConfiguration.load(file: nil, environment: [:]).secrets.isEmpty)
    }

    @Test("the file sets values and the environment overrides them")
    func fileThenEnvironment() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write(
            "cortex.yaml",
            """
            server:
              port: 9001
              host: 0.0.0.0
              max_body_bytes: 2048
            log:
              level: debug
            database:
              url: sqlite:///var/lib/cortex/state.db
            models:
              - name: scorer
                path: models/lead-scoring
                version: "2.1"
            """
        )
        let config = try CortexConfiguration.load(file: file, environment: ["PORT": "9002", "LOG_LEVEL": "WARNING"])
        #expect(config.server.port == 9002)
        #expect(config.server.host == "0.0.0.0")
        #expect(config.server.maxBodyBytes == 2048)
        #expect(config.log.level == .warning)
        #expect(config.database == .sqlite(path: "/var/lib/cortex/state.db"))
        #expect(config.models == [ModelSource(name: "scorer", version: "2.1", path: "models/lead-scoring")])
    }

    @Test("MODEL_VA_PATH and MODEL_VB_PATH replace the A/B image service's classifiers by name; ONNX and image settings")
    func imageModels() throws {
        let config = try CortexConfiguration.load(
            file: nil,
            environment: [
                "MODEL_VA_PATH": "/models/resnet.onnx", "MODEL_VB_PATH": "/models/mobilenet.onnx",
                "ORT_LIBRARY_PATH": "/opt/ort/libonnxruntime.so",
                "IMAGE_MODEL": "vB", "IMAGE_MAX_PIXELS": "1000000",
            ]
        )
        #expect(config.models.map(\.name) == ["lead-scoring", "vA", "vB"])
        #expect(config.models.map(\.path) == ["models/lead-scoring", "/models/resnet.onnx", "/models/mobilenet.onnx"])
        #expect(config.onnx.library == "/opt/ort/libonnxruntime.so")
        #expect(config.imageModel == "vB" && config.imageMaxPixels == 1_000_000)
        #expect(config.summary.contains("onnx.library: /opt/ort/libonnxruntime.so"))
        let only = try CortexConfiguration.load(file: nil, environment: ["MODEL_PATH": "models/lead-scoring", "MODEL_VA_PATH": "a.onnx"])
        #expect(only.models.map(\.name) == ["lead-scoring", "vA"], "MODEL_VA_PATH adds vA to an explicit list")
        for (key, value) in [("MODEL_VA_PATH", " "), ("IMAGE_MAX_PIXELS", "0"), ("IMAGE_MODEL", "bad name"), ("ORT_LIBRARY_PATH", "")] {
            #expect(throws: ConfigurationError.self) { try CortexConfiguration.load(file: nil, environment: [key: value]) }
        }
    }

    @Test("MODEL_PATH and MODEL_VERSION replace the configured models")
    func modelPath() throws {
        let config = try CortexConfiguration.load(
            file: nil,
            environment: ["MODEL_PATH": "models/a.json, models/b/", "MODEL_VERSION": "3.0"]
        )
        #expect(config.models.map(\.name) == ["a", "b"])
        #expect(config.models.allSatisfy { $0.version == "3.0" })
    }

    @Test(
        "a model is PATH, NAME=PATH or NAME:VERSION=PATH, in MODEL_PATH and for --model; several versions of a name are allowed, one given twice stops start-up"
    )
    func modelSpecifications() throws {
        let config = try CortexConfiguration.load(
            file: nil, environment: ["MODEL_PATH": "models/lead-scoring,digits=models/vA.onnx,digits-b:2.1=models/vB.onnx,x/a=b.onnx"])
        #expect(config.models.map(\.name) == ["lead-scoring", "digits", "digits-b", "a=b"])
        #expect(config.models.map(\.path) == ["models/lead-scoring", "models/vA.onnx", "models/vB.onnx", "x/a=b.onnx"])
        #expect(config.models.map(\.version) == [nil, nil, "2.1", nil])
        let versions = try CortexConfiguration.load(file: nil, environment: ["MODEL_PATH": "m=models/vA.onnx,m:2=models/vB.onnx"])
        #expect(versions.models.map(\.name) == ["m", "m"] && versions.models.map(\.version) == [nil, "2"])
        for (paths, twice) in [("m:2=models/vA.onnx,m:2=models/vB.onnx", "m:2"), ("m=models/vA.onnx,m=models/vB.onnx", "m")] {
            #expect {
                try CortexConfiguration.load(file: nil, environment: ["MODEL_PATH": paths])
            } throws: { error in
                (error as? ConfigurationError)?.key == "MODEL_PATH" && "\(error)".contains("'\(twice)' is given twice")
            }
        }
        #expect {
            try CortexConfiguration.load(
                file: nil, environment: ["MODEL_PATH": "m:1=models/vA.onnx,m:2=models/vB.onnx", "MODEL_VERSION": "3"])
        } throws: { error in
            (error as? ConfigurationError)?.key == "MODEL_VERSION"
        }
    }

    @Test(
        "a bad environment value names the variable and what is accepted",
        arguments: [
            ("PORT", "abc", "integer from 0 to 65535"),
            ("PORT", "70000", "integer from 0 to 65535"),
            ("LOG_LEVEL", "loud", "one of trace, debug"),
            ("LOG_FORMAT", "xml", "json, text"),
            ("MAX_BODY_BYTES", "0", "from 1"),
            ("DRAIN_TIMEOUT_S", "-1", "seconds"),
            ("MIN_FREE_DISK_MB", "lots", "integer"),
            ("DATABASE_URL", "mysql://db/x", "sqlite:PATH"),
            ("MODEL_PATH", " , ", "model paths"),
            ("DATABASE_URL", "postgres://", "postgres://user:password@host"),
            ("MODEL_PRICES", "lead-scoring=0.0000001", "MODEL=CREDITS"),
            ("MODEL_PRICES", "lead-scoring=-1", "MODEL=CREDITS"),
            ("MODEL_PRICES", "a=1,a=2", "MODEL=CREDITS"),
            ("DEFAULT_PRICE", "1e-3", "decimal"),
            ("HOLD_TTL_S", "0", "seconds from 1"),
            ("LLM_PRIMARY_URL", "ftp://models.internal", "http://host:port"),
            ("LLM_PRIMARY_KIND", "vllm", "one of ollama, openai"),
            ("LLM_PRIMARY_MODEL", "has space", "model name"),
            ("LLM_MAX_TOKENS", "0", "from 1"),
            ("PRIMARY_POLL_INTERVAL_S", "0", "seconds from 0.01"),
            ("ALLOWED_ORIGINS", "app.example.com", "origins"),
            ("LLM_PRICE_OUTPUT_PER_1K", "-1", "credits per 1,000"),
            ("BUILD_SHA", "not a sha", "commit id"),
            ("LLM_TOKENS_PER_MINUTE", "-5", "tokens per API key per minute"),
        ]
    )
    func badEnvironment(key: String, value: String, expected: String) {
        #expect {
            try CortexConfiguration.load(file: nil, environment: [key: value])
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.key == key && error.value == value && error.description.contains(key) && error.expected.contains(expected)
        }
    }

    @Test(
        "a bad file names the YAML key",
        arguments: [
            ("server:\n  prot: 1\n", "server.prot"),
            ("sever:\n  port: 1\n", "sever"),
            ("server:\n  port: eighty\n", "server.port"),
            ("models:\n  - name: x\n", "models[0].path"),
            ("models:\n  - path: a\n    weight: 2\n", "models[0].weight"),
            ("models:\n  - path: a\n  - path: b/a\n", "models[1].name"),
            ("models:\n  - path: a\n    name: 'bad name'\n", "models[0].name"),
            ("[1, 2]\n", "--config"),
            ("server: [\n", "--config"),
            // A value of the wrong shape: a list for one value, a mapping where a list goes, ...
            ("server:\n  port: [1, 2]\n", "server.port"),
            ("auth:\n  api_keys: {a: b}\n", "auth.api_keys"),
            ("billing:\n  prices: [[1]]\n", "billing.prices[0]"),
            ("rate_limit:\n  overrides:\n    - {tenant: acme, rps: 5, per: 1}\n", "rate_limit.overrides[0].per"),
            ("rate_limit:\n  overrides:\n    - {tenant: acme}\n", "rate_limit.overrides[0].rps"),
            ("llm:\n  deployments: {name: x}\n", "llm.deployments"),
        ]
    )
    func badFile(yaml: String, key: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("bad.yaml", yaml)
        #expect {
            try CortexConfiguration.load(file: file, environment: [:])
        } throws: { error in
            (error as? ConfigurationError)?.key == key
        }
    }

    @Test("REDIS_URL takes a password and a database; the password is never printed, not even in the error for a bad URL")
    func redisURL() throws {
        let config = try CortexConfiguration.load(file: nil, environment: ["REDIS_URL": "redis://:hunter2@redis.internal:6380/2"])
        #expect(config.rateLimit.redisURL == "redis://:hunter2@redis.internal:6380/2")
        #expect(config.summary.contains("redis://:***@redis.internal:6380/2"))
        #expect(!config.summary.contains("hunter2"))
        do {
            _ = try CortexConfiguration.load(file: nil, environment: ["REDIS_URL": "redis://:hunter2@redis.internal:6380/two"])
            Issue.record("a database that is not a number is refused")
        } catch {
            #expect("\(error)".contains("REDIS_URL"))
            #expect("\(error)".contains("redis://:***@redis.internal:6380/two"))
            #expect(!"\(error)".contains("hunter2"))
        }
    }

    @Test("billing and PostgreSQL settings: prices from a YAML mapping or a list, the password never printed")
    func billingAndPostgres() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write(
            "cortex.yaml",
            "billing:\n  prices:\n    lead-scoring: \"0.001\"\n    other: 2\n  hold_ttl_s: 60\ndatabase:\n  url: sqlite:x.db\n"
        )
        let config = try CortexConfiguration.load(
            file: file,
            environment: ["DATABASE_URL": "postgres://cortex:s3cret-pass@db.internal:5433/cortex?sslmode=require", "DEFAULT_PRICE": "0.5"]
        )
        #expect(config.billing.prices == ["lead-scoring": Credits(microcredits: 1000), "other": Credits(microcredits: 2_000_000)])
        #expect(config.billing.price(of: "unpriced") == Credits(microcredits: 500_000))
        #expect(config.billing.holdTTLSeconds == 60)
        #expect(config.database == .postgres(url: "postgres://cortex:s3cret-pass@db.internal:5433/cortex?sslmode=require"))
        #expect(!config.summary.contains("s3cret-pass"))
        #expect(config.summary.contains("postgres://cortex:***@db.internal:5433/cortex"))
        let list = try CortexConfiguration.load(file: nil, environment: ["MODEL_PRICES": "a=1, b=0.25"])
        #expect(list.billing.prices == ["a": Credits(microcredits: 1_000_000), "b": Credits(microcredits: 250_000)])
    }

    @Test("an LLM deployment from the file and the environment; the keys never printed; settings that disagree are refused")
    func llm() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write(
            "cortex.yaml",
            "llm:\n  deployment: assistant\n  primary_url: http://ollama:11434/\n  primary_model: gemma3:270m\n  price_input_per_1k: \"0.5\"\n"
                + "server:\n  cors_origins: [https://app.example.com]\n"
        )
        let config = try CortexConfiguration.load(
            file: file,
            environment: [
                "LLM_FALLBACK_URL": "https://api.openai.com", "LLM_FALLBACK_MODEL": "gpt-4o-mini", "OPENAI_API_KEY": "sk-secret-123",
                "PRIMARY_POLL_INTERVAL_S": "3", "PRIMARY_POLL_MAX_S": "900",
            ]
        )
        #expect(config.server.corsOrigins == ["https://app.example.com"])
        let origins = try CortexConfiguration.load(
            file: nil, environment: ["ALLOWED_ORIGINS": "https://app.example.com, http://localhost:5173"])
        #expect(config.llm.deployment == "assistant")
        #expect(config.llm.primary == .init(kind: .ollama, url: "http://ollama:11434", model: "gemma3:270m"))
        #expect(config.llm.fallback == .init(kind: .openai, url: "https://api.openai.com", model: "gpt-4o-mini", apiKey: "sk-secret-123"))
        #expect(config.llm.pollIntervalSeconds == 3 && config.llm.pollMaxSeconds == 900)
        #expect(config.llm.inputPricePer1K == Credits(microcredits: 500_000))
        #expect(origins.server.corsOrigins == ["https://app.example.com", "http://localhost:5173"])
        #expect(config.llm.hasFallback)
        #expect(!config.summary.contains("sk-secret-123") && config.summary.contains("llm.fallback_api_key: set"))
        #expect(!CortexConfiguration().llm.isEnabled, "no LLM unless configured")

        for (environment, key) in [
            (["LLM_PRIMARY_URL": "http://127.0.0.1:11434"], "LLM_PRIMARY_MODEL"),
            (["LLM_FALLBACK_URL": "http://127.0.0.1:8080", "LLM_FALLBACK_MODEL": "m"], "LLM_PRIMARY_URL"),
            (["LLM_MAX_TOKENS": "500", "LLM_MAX_TOKENS_LIMIT": "100"], "LLM_MAX_TOKENS"),
            (["LLM_PRIMARY_URL": "http://h:1", "LLM_PRIMARY_MODEL": "m", "HOLD_TTL_S": "30"], "HOLD_TTL_S"),
        ] {
            #expect(throws: ConfigurationError.self) { try CortexConfiguration.load(file: nil, environment: environment) }
            do {
                _ = try CortexConfiguration.load(file: nil, environment: environment)
            } catch let error as ConfigurationError {
                #expect(error.key == key, "\(environment)")
            }
        }
    }

    @Test("more LLM deployments from YAML: their own chains and prices, the rest inherited; keys from named variables")
    func llmDeployments() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let yaml = """
            llm:
              primary_url: http://ollama:11434
              primary_model: gemma3:270m
              first_token_timeout_s: 5
              deployments:
                - name: coder
                  providers:
                    - {kind: openai, url: "http://vllm:8000", model: qwen-coder}
                    - {kind: openai, url: "https://api.openai.com", model: gpt-4o-mini, api_key_env: CODER_OPENAI_KEY}
                    - {kind: ollama, url: "http://ollama:11434", model: "qwen2.5-coder:1.5b"}
                  price_output_per_1k: "3"
            """
        let file = try directory.write("cortex.yaml", yaml)
        let config = try CortexConfiguration.load(
            file: file, environment: ["CODER_OPENAI_KEY": "sk-coder-secret", "LLM_MAX_TOKENS": "100"])
        #expect(config.llmDeployments.map(\.deployment) == ["chat", "coder"])
        let coder = try #require(config.moreLLMDeployments.first)
        #expect(coder.providers.map(\.model) == ["qwen-coder", "gpt-4o-mini", "qwen2.5-coder:1.5b"])
        #expect(coder.providers[1].apiKey == "sk-coder-secret")
        #expect(coder.outputPricePer1K == Credits(microcredits: 3_000_000) && coder.inputPricePer1K == .zero)
        #expect(coder.firstTokenTimeoutSeconds == 5 && coder.defaultMaxTokens == 100, "inherited from llm, after the environment")
        #expect(!config.summary.contains("sk-coder-secret"))

        for (text, key) in [
            (yaml.replacingOccurrences(of: "name: coder", with: "name: chat"), "llm.deployments[0].name"),
            (yaml.replacingOccurrences(of: "url: \"http://vllm:8000\"", with: "url: vllm"), "llm.deployments[0].providers[0].url"),
            (yaml.replacingOccurrences(of: "price_output_per_1k", with: "price_out"), "llm.deployments[0].price_out"),
        ] {
            let bad = try directory.write("bad.yaml", text)
            #expect {
                try CortexConfiguration.load(file: bad, environment: ["CODER_OPENAI_KEY": "k"])
            } throws: { error in
                (error as? ConfigurationError)?.key == key
            }
        }
        #expect {
            try CortexConfiguration.load(file: file, environment: [:])
        } throws: { error in
            (error as? ConfigurationError)?.key == "llm.deployments[0].providers[1].api_key_env"
        }
    }

    @Test("a secret can come from a file (NAME_FILE, as Kubernetes mounts secrets); never both, never printed")
    func secretFiles() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let token = try directory.write("admin-token", "file-admin-token-0123456789\n")
        let database = try directory.write("database-url", "postgres://cortex:file-db-pass@db.internal:5432/cortex\n")
        let config = try CortexConfiguration.load(
            file: nil, environment: ["ADMIN_TOKEN_FILE": token, "DATABASE_URL_FILE": database, "API_KEYS_FILE": token])
        #expect(config.auth.adminToken == "file-admin-token-0123456789")
        #expect(config.database == .postgres(url: "postgres://cortex:file-db-pass@db.internal:5432/cortex"))
        #expect(config.auth.apiKeys == ["file-admin-token-0123456789"])
        #expect(Set(config.secrets) == ["file-admin-token-0123456789", "file-db-pass"])
        #expect(!config.summary.contains("file-admin-token") && !config.summary.contains("file-db-pass"))
        let alias = try CortexConfiguration.load(file: nil, environment: ["API_ADMIN_KEY_FILE": token])
        #expect(alias.auth.adminToken == "file-admin-token-0123456789", "the alias takes a file too")

        let short = try directory.write("short", "short")
        for (environment, key) in [
            (["ADMIN_TOKEN_FILE": token, "ADMIN_TOKEN": "env-admin-token-0123456789"], "ADMIN_TOKEN_FILE"),
            (["ADMIN_TOKEN_FILE": directory.path + "/missing"], "ADMIN_TOKEN_FILE"),
            (["ADMIN_TOKEN_FILE": short], "ADMIN_TOKEN_FILE"),
        ] {
            #expect {
                try CortexConfiguration.load(file: nil, environment: environment)
            } throws: { error in
                guard let error = error as? ConfigurationError else { return false }
                return error.key == key && !error.description.contains("env-admin-token") && !error.description.contains("short\"")
            }
        }
        #expect(throws: Never.self) { try CortexConfiguration.load(file: nil, environment: ["PORT_FILE": "/nonexistent"]) }
    }

    @Test("the command line wins over the environment and the file, and a bad value names the option")
    func commandLine() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("cortex.yaml", "server:\n  port: 9001\n  host: 0.0.0.0\n")
        let config = try CortexConfiguration.load(file: file, environment: ["PORT": "9002"], commandLine: ["server.port": "9003"])
        #expect(config.server.port == 9003 && config.server.host == "0.0.0.0")
        #expect {
            try CortexConfiguration.load(file: nil, environment: [:], commandLine: ["server.port": "70000"])
        } throws: { error in
            (error as? ConfigurationError)?.key == "--port"
        }
    }

    @Test("a missing file is an error naming --config")
    func missingFile() {
        #expect(throws: ConfigurationError.self) {
            try CortexConfiguration.load(file: "/nonexistent/cortex.yaml", environment: [:])
        }
    }
}
