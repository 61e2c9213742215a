/// The `# HELP` line of every metric Cortex exports, by name: declared once, checked against the
/// metrics table of `docs/operations.md` by a test, and written into `/metrics` before each
/// family's `# TYPE` line (swift-metrics, which the code records through, carries no help text).
enum MetricHelp {
    static let texts: [String: String] = [
        "http_requests_total": "Requests by method, route template and status.",
        "http_request_duration_seconds": "Time from request head to response, by method, route and status.",
        "http_connections_open": "Client connections open now.",
        "http_connections_refused_total": "Connections refused with 503 because MAX_CONNECTIONS were open.",
        "http_request_timeouts_total": "Requests cut for arriving too slowly, by stage (header or body).",
        "inference_outcome_total": "Inference requests by model, outcome and (for a split) variant.",
        "credits_spent_total": "Credits settled, by model.",
        "rate_limit_decisions_total": "Rate-limit decisions: allowed or limited.",
        "rate_limit_backend_up": "1 while rate limits are shared through Redis, 0 in local fallback.",
        "ledger_batch_size": "Ledger writes per shared transaction.",
        "ledger_commit_seconds": "Time of each shared ledger transaction, fsync included.",
        "ledger_batch_retries_total": "Shared ledger transactions that failed and were run again one write at a time.",
        "inference_latency_seconds": "Validation plus prediction time, by model and (for a split) variant.",
        "model_prediction_latency": "The backend's prediction time alone, by model, in seconds.",
        "model_prediction_errors": "Predictions that failed, by model.",
        "model_batch_size": "Rows per model execution (above 1 when dynamic batching merges requests).",
        "model_ready": "1 while the model serves.",
        "model_file_changed": "1 while the model's file on disk differs from what was loaded.",
        "status_ready": "1 while /ready would answer 200.",
        "model_queue_seconds": "Time a request waited in the model's dynamic batcher.",
        "api_tenants_count": "Tenants in the identity store.",
        "status_legacy_requests_total": "Requests to the legacy /status/summary.",
        "lead_enrich_total": "Leads scored by POST /api/v1/score.",
        "lead_outcome_total": "Scored leads by score band: high from 0.7, medium from 0.3, low below.",
        "cortex_build_info": "Always 1; the version is the label.",
        "traffic_requests_total": "Requests a traffic split sent to each variant, by endpoint.",
        "shadow_requests_total": "Shadow copies by endpoint, shadow model and outcome.",
        "shadow_comparisons_total": "A classifier's rows compared between primary and shadow: agree or disagree.",
        "shadow_agreement_ratio": "This replica's share of compared rows that agreed, since start.",
        "shadow_absolute_difference": "Absolute difference between the answer's and the shadow's values.",
        "canary_weight": "The candidate's share of the traffic while a canary runs.",
        "canary_decisions_total": "Canary decisions this replica made: step, promoted, rolled_back.",
        "llm_requests_total": "Attempts at an LLM provider, by deployment, provider and outcome.",
        "llm_fallback_total": "LLM requests that moved from one provider to the next.",
        "llm_tokens_total": "Prompt and completion tokens billed.",
        "llm_time_to_first_token_seconds": "Streams: time from the request to the first token sent.",
        "llm_provider_up": "1 while the provider's circuit is closed.",
        "llm_path": "1 for the LLM path in force (warming, primary, fallback), 0 for the others.",
        "process_cpu_seconds_total": "User and system CPU time this process has used, in seconds.",
        "process_resident_memory_bytes": "Resident memory of this process.",
        "process_virtual_memory_bytes": "Virtual memory of this process.",
        "process_open_fds": "Open file descriptors of this process.",
        "process_max_fds": "The soft limit of open file descriptors.",
        "process_start_time_seconds": "When this process started, in seconds since the Unix epoch.",
    ]

    /// The exposition with a `# HELP` line before each family's `# TYPE` line.
    static func annotate(_ exposition: [UInt8]) -> [UInt8] {
        let typePrefix = Array("# TYPE ".utf8)
        var output: [UInt8] = []
        output.reserveCapacity(exposition.count + texts.count * 64)
        var lineStart = exposition.startIndex
        while lineStart < exposition.endIndex {
            let lineEnd = exposition[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? exposition.endIndex
            let line = exposition[lineStart..<lineEnd]
            if line.starts(with: typePrefix) {
                let name = line.dropFirst(typePrefix.count).prefix { $0 != UInt8(ascii: " ") }
                if let help = texts[String(decoding: name, as: UTF8.self)] {
                    output += Array("# HELP ".utf8) + name + Array(" \(help)\n".utf8)
                }
            }
            output += line
            if lineEnd < exposition.endIndex { output.append(UInt8(ascii: "\n")) }
            lineStart = exposition.index(after: lineEnd)
        }
        return output
    }
}
