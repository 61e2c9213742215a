import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The ONNX Runtime shared library, opened once per process, and its C function table.
///
/// Nothing links against ONNX Runtime at build time: the library the PyPI `onnxruntime` wheel
/// ships is found at run time (see ``locate(configured:environment:workingDirectory:)``) and
/// opened with `dlopen`; every function is reached through the table `OrtGetApiBase` returns.
/// When no library is found, ONNX models fail to load with the reason, and the rest of Cortex
/// serves.
public final class ONNXRuntimeLibrary: Sendable {
    /// The API version asked for: every slot used here exists since ONNX Runtime 1.10.
    static let apiVersion: UInt32 = 10

    /// Where the library was opened from.
    public let path: String
    /// ONNX Runtime's version string, e.g. `1.32.0`.
    public let version: String
    let api: ONNXRuntimeAPI
    /// The process's one `OrtEnv` (logging at ERROR level only) and CPU memory description.
    nonisolated(unsafe) let environment: OpaquePointer
    nonisolated(unsafe) let cpuMemory: OpaquePointer
    /// The default allocator, which allocates the names sessions return; never released.
    nonisolated(unsafe) let allocator: OpaquePointer

    private init(path: String, version: String, api: ONNXRuntimeAPI) throws(ONNXRuntimeError) {
        self.path = path
        self.version = version
        self.api = api
        var environment: OpaquePointer?
        try api.check(api.createEnv(3, "cortex", &environment))
        var memory: OpaquePointer?
        try api.check(api.createCpuMemoryInfo(0, 0, &memory))
        var allocator: OpaquePointer?
        try api.check(api.getAllocatorWithDefaultOptions(&allocator))
        guard let environment, let memory, let allocator else {
            throw ONNXRuntimeError(code: 1, message: "ONNX Runtime returned no environment")
        }
        self.environment = environment
        self.cpuMemory = memory
        self.allocator = allocator
    }

    /// Why the library could not be opened.
    public struct LoadError: Error, CustomStringConvertible, Equatable, Sendable {
        public var description: String
    }

    private static let cache = Mutex<[String: Result<ONNXRuntimeLibrary, LoadError>]>([:])

    /// Opens the library at `path` (once per path and process; never closed).
    public static func open(path: String) -> Result<ONNXRuntimeLibrary, LoadError> {
        cache.withLock { cache in
            if let opened = cache[path] { return opened }
            let opened = load(path: path)
            cache[path] = opened
            return opened
        }
    }

    private static func load(path: String) -> Result<ONNXRuntimeLibrary, LoadError> {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            return .failure(LoadError(description: "cannot open ONNX Runtime at \(path): \(reason)"))
        }
        guard let symbol = dlsym(handle, "OrtGetApiBase") else {
            return .failure(LoadError(description: "\(path) is not ONNX Runtime: it has no OrtGetApiBase"))
        }
        typealias GetApiBase = @convention(c) () -> UnsafeRawPointer?
        typealias GetApi = @convention(c) (UInt32) -> UnsafeRawPointer?
        typealias GetVersionString = @convention(c) () -> UnsafePointer<CChar>?
        guard let base = unsafeBitCast(symbol, to: GetApiBase.self)() else {
            return .failure(LoadError(description: "\(path): OrtGetApiBase returned nothing"))
        }
        // struct OrtApiBase { const OrtApi* (*GetApi)(uint32_t); const char* (*GetVersionString)(void); }
        let getApi = unsafeBitCast(base.load(as: UnsafeRawPointer.self), to: GetApi.self)
        let getVersion = unsafeBitCast(
            base.load(fromByteOffset: MemoryLayout<UnsafeRawPointer>.stride, as: UnsafeRawPointer.self), to: GetVersionString.self)
        let version = getVersion().map { String(cString: $0) } ?? "unknown"
        guard let table = getApi(apiVersion) else {
            return .failure(
                LoadError(
                    description: "ONNX Runtime \(version) at \(path) is too old: Cortex needs API version \(apiVersion) (1.10 or newer)")
            )
        }
        do {
            return .success(try ONNXRuntimeLibrary(path: path, version: version, api: ONNXRuntimeAPI(table: table)))
        } catch {
            return .failure(LoadError(description: "ONNX Runtime \(version) at \(path) did not start: \(error)"))
        }
    }

    /// Finds `libonnxruntime.so`, first match wins:
    /// 1. `configured` (`onnx.library` / `ORT_LIBRARY_PATH`),
    /// 2. `ORT_DYLIB_PATH` (the name Rust's `ort` crate uses),
    /// 3. the project's virtualenv, `.venv/lib/python3*/site-packages/onnxruntime/capi/`,
    /// 4. the `onnxruntime` package of the system's `python3` (unless `askSystemPython` is false).
    ///
    /// - Returns: The path, or why none was found (every place looked at).
    public static func locate(
        configured: String?,
        environment: [String: String]? = nil,
        workingDirectory: String? = nil,
        askSystemPython: Bool = true
    ) -> Result<String, LoadError> {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let workingDirectory = workingDirectory ?? FileManager.default.currentDirectoryPath
        var looked: [String] = []
        if let configured, !configured.isEmpty {
            guard FileManager.default.fileExists(atPath: configured) else {
                return .failure(LoadError(description: "the configured ONNX Runtime library \(configured) does not exist"))
            }
            return .success(configured)
        }
        if let path = environment["ORT_DYLIB_PATH"], !path.isEmpty {
            guard FileManager.default.fileExists(atPath: path) else {
                return .failure(LoadError(description: "ORT_DYLIB_PATH=\(path) does not exist"))
            }
            return .success(path)
        }
        let venv = (workingDirectory as NSString).appendingPathComponent(".venv/lib")
        looked.append(venv + "/python3*/site-packages/onnxruntime/capi")
        for python in (try? FileManager.default.contentsOfDirectory(atPath: venv))?.sorted() ?? [] where python.hasPrefix("python3") {
            if let found = library(in: "\(venv)/\(python)/site-packages/onnxruntime/capi") { return .success(found) }
        }
        if askSystemPython {
            looked.append("python3 -c 'import onnxruntime'")
            if let directory = systemPythonPackage(), let found = library(in: directory + "/capi") {
                return .success(found)
            }
        }
        return .failure(
            LoadError(
                description:
                    "ONNX Runtime not found (looked in \(looked.joined(separator: ", "))); run scripts/onnxruntime.sh install, or set ORT_DYLIB_PATH to libonnxruntime.so"
            )
        )
    }

    /// `libonnxruntime.so.<version>` (or a plain `libonnxruntime.so`) in `directory`.
    static func library(in directory: String) -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let candidates = names.filter { $0 == "libonnxruntime.so" || $0.hasPrefix("libonnxruntime.so.") }.sorted()
        return candidates.last.map { "\(directory)/\($0)" }
    }

    /// The folder of the `onnxruntime` Python package, asking the system's `python3`.
    private static func systemPythonPackage() -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import os, onnxruntime; print(os.path.dirname(onnxruntime.__file__))"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return nil
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        let path = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return path.isEmpty ? nil : path
    }
}
