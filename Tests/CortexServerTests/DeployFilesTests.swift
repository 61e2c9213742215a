import CortexRuntime
import CortexTestSupport
import Foundation
import Testing
import Yams

@testable import CortexServer

/// The deployment files, checked with the tools that run without Docker or a cluster:
/// hadolint, kubernetes-validate (the Kubernetes schemas), checkov, `kubectl kustomize`, and what
/// Cortex itself says about them (its settings, its binary's libraries, its ONNX Runtime discovery).
/// `scripts/deploy-tools.sh` installs the tools.
@Suite("Deployment files and developer commands: Dockerfile, Kubernetes manifests, make help, quick_test.sh", .serialized)
struct DeployFilesTests {
    static var tools: String { Repository.path(".venv-deploy/bin") }

    static func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32?, output: String) {
        try await CortexProcess.output(executable, arguments)
    }

    static func dockerfile() throws -> [String] {
        // Continuation lines joined: one instruction per entry.
        let text = try String(contentsOfFile: Repository.path("Dockerfile"), encoding: .utf8)
        return text.replacingOccurrences(of: "\\\n", with: " ").split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    }

    /// The instructions of the last stage (the image that runs).
    static func runtimeStage() throws -> [String] {
        let lines = try dockerfile()
        let start = lines.lastIndex { $0.hasPrefix("FROM ") } ?? 0
        return Array(lines[start...])
    }

    @Test("hadolint passes the Dockerfile; every COPY source exists and is not excluded by .dockerignore")
    func dockerfileLintAndSources() async throws {
        let lint = try await Self.run(Self.tools + "/hadolint", [Repository.path("Dockerfile")])
        #expect(lint.status == 0, "\(lint.output)")
        let ignored = try String(contentsOfFile: Repository.path(".dockerignore"), encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") }.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "/ ")) }
        var copied = 0
        for line in try Self.dockerfile() where line.hasPrefix("COPY ") && !line.contains("--from=") {
            let parts = line.split(separator: " ").dropFirst().map(String.init)
            for source in parts.dropLast() {
                copied += 1
                #expect(FileManager.default.fileExists(atPath: Repository.path(source)), "COPY \(source): no such file in the repository")
                let top = source.split(separator: "/").first.map(String.init) ?? source
                #expect(!ignored.contains(top), "COPY \(source) but .dockerignore excludes it")
            }
        }
        #expect(copied >= 5)
    }

    @Test(
        "the image runs the built product as a non-root user, on port 8000 with HOST=0.0.0.0, a HEALTHCHECK on /health, BUILD_SHA as a build argument"
    )
    func dockerfileRuntime() throws {
        let stage = try Self.runtimeStage()
        let all = try Self.dockerfile()
        #expect(all.contains { $0.contains("swift build -c release --product cortex") })
        #expect(
            stage.contains("ENTRYPOINT [\"cortex\"]")
                && stage.contains { $0.hasPrefix("COPY --from=build /out/cortex /usr/local/bin/cortex") })
        #expect(stage.contains { $0.hasPrefix("USER 10001") })
        #expect(
            stage.contains("EXPOSE 8000")
                && stage.contains { $0.hasPrefix("ENV ") && $0.contains("HOST=0.0.0.0") && $0.contains("PORT=8000") })
        #expect(stage.contains { $0.hasPrefix("HEALTHCHECK ") && $0.contains("/health") })
        #expect(stage.contains("ARG BUILD_SHA=unknown") && stage.contains { $0.contains("BUILD_SHA=${BUILD_SHA}") })
        // The default BUILD_SHA and the image's other settings are ones Cortex accepts.
        let environment = ["HOST": "0.0.0.0", "PORT": "8000", "DATABASE_URL": "sqlite:/app/data/cortex.db", "BUILD_SHA": "unknown"]
        #expect(throws: Never.self) { try CortexConfiguration.load(file: nil, environment: environment) }
    }

    @Test("the runtime stage installs every shared library the binary needs (ldd), and copies the Swift runtime")
    func sharedLibraries() async throws {
        let (_, output) = try await Self.run("/usr/bin/ldd", [CortexProcess.binary])
        let installLine = try Self.runtimeStage().first { $0.contains("apt-get install") } ?? ""
        let installed = Set(installLine.split(separator: " ").map(String.init))
        #expect(try Self.dockerfile().contains { $0.contains("cp /usr/lib/swift/linux/*.so /out/swift/") })
        var checked = 0
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count >= 3, parts[1] == "=>" else { continue }
            let path = String(parts[2])
            if path.contains("/usr/lib/swift/linux/") { continue }  // the Swift runtime, copied from the build stage
            // dpkg knows a file by one of its names: /lib or /usr/lib (merged /usr), the link or its target.
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            var package = ""
            for candidate in [path, resolved].flatMap({ [$0, $0.hasPrefix("/usr/") ? String($0.dropFirst(4)) : "/usr" + $0] }) {
                let (status, owner) = try await Self.run("/usr/bin/dpkg", ["-S", candidate])
                if status == 0, let name = owner.split(separator: ":").first {
                    package = String(name)
                    break
                }
            }
            #expect(!package.isEmpty, "\(path) belongs to no Debian package")
            checked += 1
            if package == "libc6" { continue }  // every Debian image has it
            #expect(installed.contains(package), "\(path) comes from \(package), which the runtime stage does not install")
        }
        #expect(checked >= 5, "\(output)")
    }

    @Test("ONNX Runtime lands where Cortex's discovery looks, with no setting")
    func onnxRuntimePath() throws {
        let stage = try Self.runtimeStage()
        let copy = try #require(stage.first { $0.hasPrefix("COPY --from=onnxruntime ") })
        let destination = try #require(copy.split(separator: " ").last.map(String.init))
        #expect(stage.contains("WORKDIR /app") && destination.hasPrefix("/app/"))
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let capi = root.path + destination.dropFirst("/app".count)
        try FileManager.default.createDirectory(atPath: capi, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: capi + "libonnxruntime.so.1.32.0", contents: Data())
        let found = ONNXRuntimeLibrary.locate(configured: nil, environment: [:], workingDirectory: root.path, askSystemPython: false)
        #expect((try? found.get()) == capi + "libonnxruntime.so.1.32.0", "\(found)")
    }

    @Test(
        "kubernetes-validate (strict, the Kubernetes schemas) passes deploy/k8s/cortex.yaml and the dev-databases overlay; checkov finds nothing"
    )
    func kubernetesValidateAndCheckov() async throws {
        let validated = try await Self.run(Self.tools + "/kubernetes-validate", ["--strict", Repository.path("deploy/k8s/cortex.yaml")])
        #expect(validated.status == 0, "\(validated.output)")
        #expect(validated.output.components(separatedBy: "passed for resource").count - 1 == 7, "\(validated.output)")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let built = try await Self.run("/usr/bin/env", ["kubectl", "kustomize", Repository.path("deploy/overlays/dev-databases")])
        #expect(built.status == 0, "\(built.output)")
        try built.output.write(toFile: directory.file("overlay.yaml"), atomically: true, encoding: .utf8)
        let overlay = try await Self.run(Self.tools + "/kubernetes-validate", ["--strict", directory.file("overlay.yaml")])
        #expect(overlay.status == 0, "\(overlay.output)")
        let checkov = try await Self.run(
            Self.tools + "/checkov",
            ["-f", Repository.path("deploy/k8s/cortex.yaml"), "--framework", "kubernetes", "--compact", "--quiet", "--skip-download"])
        #expect(checkov.status == 0 && checkov.output.contains("Failed checks: 0"), "\(checkov.output)")
    }

    @Test("make help lists every target of the Makefile with its one-line description")
    func makeHelp() async throws {
        let (status, output) = try await Self.run("/usr/bin/make", ["-s", "-C", Repository.root.path, "help"])
        #expect(status == 0, "\(output)")
        let makefile = try String(contentsOfFile: Repository.path("Makefile"), encoding: .utf8)
        let phony = try #require(makefile.split(separator: "\n").first { $0.hasPrefix(".PHONY:") }).split(separator: " ").dropFirst()
        #expect(phony.count >= 20)
        let listed = Set(output.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) })
        for target in phony { #expect(listed.contains(String(target)), "make help does not list \(target)") }
        for target in ["help", "install", "dev", "test-unit", "test-integration", "lint", "format", "docker-build", "docker-run"] {
            #expect(phony.contains(Substring(target)), "no make \(target)")
        }
    }

    @Test("scripts/quick_test.sh scores a lead and classifies a digit against a running Cortex, and prints both answers")
    func quickTest() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: [:], directory: directory)
        defer { cortex.terminate() }
        let (status, stdout, stderr) = try await CortexProcess.runToCompletion(
            Repository.path("scripts/quick_test.sh"), [], environment: ["CORTEX_URL": "http://127.0.0.1:\(port)"], timeout: .seconds(60))
        #expect(status == 0, "\(stdout)\(stderr)")
        #expect(stdout.contains(#""score":"#) && stdout.contains(#""label":"3""#), "\(stdout)")
        // A failing request fails the script.
        let (refused, _, _) = try await CortexProcess.runToCompletion(
            Repository.path("scripts/quick_test.sh"), [],
            environment: ["CORTEX_URL": "http://127.0.0.1:\(port)", "API_KEY": "not-a-key-0001"],
            timeout: .seconds(60))
        #expect(refused != 0)
    }

    @Test(
        "KServe: Cortex started with the ServingRuntime's own arguments and environment serves /mnt/models under the InferenceService's name over the Open Inference Protocol"
    )
    func kserveRuntime() async throws {
        let runtime = try #require(try Self.documents("deploy/kserve/servingruntime.yaml").first)
        #expect(runtime["kind"] as? String == "ServingRuntime")
        #expect(Self.value(runtime, "spec", "protocolVersions") as? [String] == ["v2"])
        let formats = (Self.value(runtime, "spec", "supportedModelFormats") as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(Set(formats) == ["onnx", "xgboost"])
        let container = try #require(Self.value(runtime, "spec", "containers", "0") as? [String: Any])
        // Read-only root; what Cortex writes (its SQLite file in /tmp) is on the runtime's emptyDir.
        #expect(Self.value(container, "securityContext", "readOnlyRootFilesystem") as? Bool == true)
        #expect(Self.value(container, "volumeMounts", "0", "mountPath") as? String == "/tmp")
        #expect(
            Self.value(runtime, "spec", "volumes", "0", "name") as? String == Self.value(container, "volumeMounts", "0", "name") as? String)
        let arguments = try #require(container["args"] as? [String])
        let environment = Dictionary(
            uniqueKeysWithValues: (container["env"] as? [[String: Any]] ?? []).compactMap { entry in
                (entry["name"] as? String).map { ($0, "\(entry["value"] ?? "")") }
            })
        let service = try #require(try Self.documents("deploy/kserve/inferenceservice.yaml").first)
        #expect(Self.value(service, "spec", "predictor", "model", "runtime") as? String == "cortex")
        let name = try #require(Self.value(service, "metadata", "name") as? String)

        for (format, file, source) in [
            ("xgboost", "model.json", "models/lead-scoring/model.json"), ("onnx", "model.onnx", "models/vA.onnx"),
        ] {
            // /mnt/models as the storage initializer leaves it: the model file alone.
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let models = directory.file("mnt-models")
            try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Repository.path(source), toPath: models + "/" + file)
            // KServe's substitutions; on loopback and a free port here.
            var args = arguments.map {
                $0.replacingOccurrences(of: "{{.Name}}", with: name).replacingOccurrences(of: "/mnt/models", with: models)
            }
            if let host = args.firstIndex(of: "--host") { args[host + 1] = "127.0.0.1" }
            if let port = args.firstIndex(of: "--port") { args[port + 1] = "0" }
            var env = environment
            env["DATABASE_URL"] = "sqlite:" + directory.file("cortex.db")
            env["MIN_FREE_DISK_MB"] = "1"
            let cortex = try CortexProcess(arguments: args, environment: env)
            defer { cortex.terminate() }
            var port: Int?
            for _ in 0..<600 where port == nil {
                port = cortex.listeningPort
                if port == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let listening = try #require(port, "\(format): \(cortex.stdout)\(cortex.stderr)")
            let ready = try RawHTTPConnection.request(port: listening, path: "/v2/models/\(name)/ready", demoKey: "")
            #expect(ready?.status == 200, "\(format): \(ready?.body ?? "")")
            let metadata = try RawHTTPConnection.request(port: listening, path: "/v2/models/\(name)", demoKey: "")?.body ?? ""
            #expect(
                metadata.contains(#""name":"\#(name)""#) && metadata.contains(format == "onnx" ? "onnx" : "xgboost_json"), "\(metadata)")
            if format == "xgboost" {
                let body = #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[250,40.5,1,14,6,1,2,1,4,1]}]}"#
                let answer = try RawHTTPConnection.request(
                    port: listening, method: "POST", path: "/v2/models/\(name)/infer", body: body, demoKey: "")
                #expect(
                    answer?.status == 200 && answer?.body.contains(#""name":"predictions""#) == true, "no key needed: \(answer?.body ?? "")"
                )
            }
        }
    }

    /// `${NAME:-default}` as Compose expands it with `NAME` unset.
    static func composeDefaults(_ text: String) -> String {
        text.replacingOccurrences(of: #"\$\{[A-Z_]+:-([^}]*)\}"#, with: "$1", options: .regularExpression)
    }

    @Test(
        "compose.yml: valid against the Compose Specification's schema, mounts what exists, waits only on healthchecks; its Cortex, PostgreSQL, Redis and Prometheus started here as processes work together"
    )
    func composeStack() async throws {
        let validator = """
            import json, sys, yaml, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.validate(yaml.safe_load(open(sys.argv[2])), schema)
            print("valid")
            """
        let schema = Repository.path(".venv-deploy/compose_spec.json")
        let valid = try await Self.run(Self.tools + "/python", ["-c", validator, schema, Repository.path("compose.yml")])
        #expect(valid.status == 0 && valid.output.contains("valid"), "\(valid.output)")
        // The validator refuses what Compose would: a condition it does not know.
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let text = try String(contentsOfFile: Repository.path("compose.yml"), encoding: .utf8)
        try text.replacingOccurrences(of: "condition: service_healthy", with: "condition: sometimes")
            .write(toFile: directory.file("broken.yml"), atomically: true, encoding: .utf8)
        let broken = try await Self.run(Self.tools + "/python", ["-c", validator, schema, directory.file("broken.yml")])
        #expect(broken.status != 0)

        let compose = try #require(try Yams.load(yaml: Self.composeDefaults(text)) as? [String: Any])
        let services = try #require(compose["services"] as? [String: [String: Any]])
        #expect(Set(services.keys) == ["cortex", "postgres", "redis", "prometheus", "grafana"])
        for (name, service) in services {
            for volume in service["volumes"] as? [String] ?? [] where volume.hasPrefix("./") {
                let host = String(volume.split(separator: ":")[0])
                #expect(
                    FileManager.default.fileExists(atPath: Repository.path(String(host.dropFirst(2)))),
                    "\(name) mounts \(host), which does not exist")
            }
            for (dependency, condition) in service["depends_on"] as? [String: [String: String]] ?? [:] {
                #expect(services[dependency] != nil, "\(name) depends on \(dependency), no such service")
                if condition["condition"] == "service_healthy" {
                    #expect(
                        services[dependency]?["healthcheck"] != nil,
                        "\(name) waits for \(dependency) to be healthy, which has no healthcheck")
                }
            }
        }
        let datasource = try #require(
            try Yams.load(
                yaml: String(contentsOfFile: Repository.path("local/grafana/provisioning/datasources/prometheus.yml"), encoding: .utf8))
                as? [String: Any])
        #expect(
            Self.value(datasource, "datasources", "0", "url") as? String == "http://prometheus:9090", "Grafana reads the compose Prometheus"
        )

        // The same services as processes: this test's PostgreSQL database and Redis in place of the
        // containers, Cortex with the compose environment, Prometheus with the compose config.
        let database = try await PostgresTestServer.createDatabase()
        let redis = try RedisTestServer()
        var environment = try #require(services["cortex"]?["environment"] as? [String: String])
        #expect(environment["DATABASE_URL"]?.hasPrefix("postgres://cortex:") == true && environment["REDIS_URL"] == "redis://redis:6379/0")
        environment["DATABASE_URL"] = database
        environment["REDIS_URL"] = redis.url
        let (cortex, port) = try await CortexProcess.serve(environment: environment, directory: directory)
        defer { cortex.terminate() }
        let ready = try RawHTTPConnection.request(port: port, path: "/ready")
        #expect(ready?.status == 200, "\(ready?.body ?? "")")
        let metrics = try RawHTTPConnection.request(port: port, path: "/metrics")?.body ?? ""
        #expect(metrics.contains("rate_limit_backend_up 1"), "limits shared through Redis")
        let scored = try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead)
        #expect(scored?.status == 200, "the compose file's demo key works: \(scored?.body ?? "")")

        let scrape = try String(contentsOfFile: Repository.path("local/prometheus/prometheus.yml"), encoding: .utf8)
            .replacingOccurrences(of: "cortex:8000", with: "127.0.0.1:\(port)")
            .replacingOccurrences(of: "/etc/prometheus/rules/", with: Repository.path("prometheus") + "/")
            .replacingOccurrences(of: "scrape_interval: 15s", with: "scrape_interval: 1s")
        let (prometheus, prometheusPort) = try PrometheusRulesTests.startPrometheus(config: scrape, in: directory)
        defer { prometheus.terminate() }
        let deadline = ContinuousClock.now + .seconds(60)
        var up = 0
        while up == 0, ContinuousClock.now < deadline {
            up = (try? PrometheusRulesTests.seriesCount(#"up{job="cortex"} == 1"#, port: prometheusPort)) ?? 0
            if up == 0 { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(up == 1, "Prometheus scrapes Cortex with the compose config: \(prometheus.stderr.suffix(1500))")
        let rules = try RawHTTPConnection.request(port: prometheusPort, path: "/api/v1/rules", demoKey: "")?.body ?? ""
        #expect(rules.contains("HighErrorRate") && rules.contains("route:http_errors:ratio_rate5m"), "the rules are loaded")
    }

    /// The documents of a YAML file, as dictionaries.
    static func documents(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: Repository.path(path), encoding: .utf8)
        return try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
    }

    static func value(_ object: Any?, _ path: String...) -> Any? {
        path.reduce(object) { current, key in
            if let index = Int(key) { return (current as? [Any]).flatMap { $0.indices.contains(index) ? $0[index] : nil } }
            return (current as? [String: Any])?[key]
        }
    }

    @Test(
        "the manifest's settings are Cortex's and load; probes, drain timings, security and selectors agree with each other and with Cortex"
    )
    func manifestAgreesWithCortex() throws {
        let documents = try Self.documents("deploy/k8s/cortex.yaml")
        func kind(_ name: String) throws -> [String: Any] { try #require(documents.first { $0["kind"] as? String == name }, "\(name)") }
        for document in documents where document["kind"] as? String != "Namespace" {
            #expect(Self.value(document, "metadata", "namespace") as? String == "cortex", "\(document["kind"] ?? "")")
        }
        // Every ConfigMap key and secret variable is a setting Cortex declares, and the values load.
        let config = try #require(Self.value(try kind("ConfigMap"), "data") as? [String: String])
        let declared = Set(CortexConfiguration.settings.flatMap(\.names))
        for key in config.keys { #expect(declared.contains(key), "\(key) is not a Cortex setting") }
        let deployment = try kind("Deployment")
        let container = try #require(Self.value(deployment, "spec", "template", "spec", "containers", "0") as? [String: Any])
        let secretVariables = (container["env"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(Set(secretVariables) == ["DATABASE_URL", "REDIS_URL", "ADMIN_TOKEN", "API_KEYS"])
        for variable in secretVariables { #expect(declared.contains(variable), "\(variable) is not a Cortex setting") }
        var environment = config
        environment["DATABASE_URL"] = "postgres://cortex:secret@postgres:5432/cortex"
        environment["REDIS_URL"] = "redis://:secret@redis:6379/0"
        environment["ADMIN_TOKEN"] = "an-admin-token-of-24-chars"
        #expect(throws: Never.self) { try CortexConfiguration.load(file: nil, environment: environment) }

        // Probes on Cortex's routes; preStop as long as DRAIN_DELAY_S; the grace period above it all.
        #expect(Self.value(container, "livenessProbe", "httpGet", "path") as? String == "/health")
        #expect(Self.value(container, "readinessProbe", "httpGet", "path") as? String == "/ready")
        #expect(Self.value(container, "startupProbe", "httpGet", "path") as? String == "/health")
        let preStop = try #require(Self.value(container, "lifecycle", "preStop", "exec", "command") as? [String])
        let delay = try #require(config["DRAIN_DELAY_S"].flatMap(Int.init))
        let timeout = try #require(config["DRAIN_TIMEOUT_S"].flatMap(Int.init))
        #expect(preStop == ["sleep", "\(delay)"])
        let grace = try #require(Self.value(deployment, "spec", "template", "spec", "terminationGracePeriodSeconds") as? Int)
        #expect(
            grace > delay + delay + timeout, "terminationGracePeriodSeconds \(grace) must exceed preStop + DRAIN_DELAY_S + DRAIN_TIMEOUT_S")
        #expect(Self.value(container, "securityContext", "readOnlyRootFilesystem") as? Bool == true)
        #expect(Self.value(deployment, "spec", "template", "spec", "securityContext", "runAsNonRoot") as? Bool == true)
        #expect(
            Self.value(container, "resources", "requests", "cpu") != nil && Self.value(container, "resources", "limits", "memory") != nil)
        // What Cortex writes is mounted: the data folder and /tmp.
        let mounts = (container["volumeMounts"] as? [[String: Any]] ?? []).compactMap { $0["mountPath"] as? String }
        #expect(Set(mounts) == ["/app/data", "/tmp"])

        // Selectors: the Service, PDB and ServiceMonitor find the pods; the HPA scales this Deployment.
        let podLabels = try #require(Self.value(deployment, "spec", "template", "metadata", "labels") as? [String: String])
        let service = try kind("Service")
        for (name, selector) in [
            ("Service", Self.value(service, "spec", "selector")),
            ("PodDisruptionBudget", Self.value(try kind("PodDisruptionBudget"), "spec", "selector", "matchLabels")),
            ("NetworkPolicy", Self.value(try kind("NetworkPolicy"), "spec", "podSelector", "matchLabels")),
        ] {
            let labels = try #require(selector as? [String: String], "\(name)")
            #expect(labels.allSatisfy { podLabels[$0.key] == $0.value }, "\(name) selects \(labels), the pods are \(podLabels)")
        }
        let monitor = try kind("ServiceMonitor")
        let serviceLabels = try #require(Self.value(service, "metadata", "labels") as? [String: String])
        let monitored = try #require(Self.value(monitor, "spec", "selector", "matchLabels") as? [String: String])
        #expect(monitored.allSatisfy { serviceLabels[$0.key] == $0.value })
        #expect(Self.value(monitor, "spec", "endpoints", "0", "path") as? String == "/metrics")
        #expect(
            Self.value(monitor, "spec", "endpoints", "0", "port") as? String == Self.value(service, "spec", "ports", "0", "name") as? String
        )
        let hpa = try kind("HorizontalPodAutoscaler")
        #expect(Self.value(hpa, "spec", "scaleTargetRef", "name") as? String == Self.value(deployment, "metadata", "name") as? String)
        #expect(Self.value(container, "ports", "0", "containerPort") as? Int == Int(config["PORT"] ?? ""))
    }
}
