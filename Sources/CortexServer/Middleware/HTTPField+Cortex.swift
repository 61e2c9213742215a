public import HTTPTypes

extension HTTPField.Name {
    /// W3C trace context: the caller's trace and span (continued, and passed on).
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name: the initialiser only fails on invalid tokens.
    static let traceparent = Self("traceparent")!
    /// W3C trace context: vendors' trace state, passed on with `traceparent`.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name: the initialiser only fails on invalid tokens.
    static let tracestate = Self("tracestate")!

    /// The client's request id, echoed back.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name: the initialiser only fails on invalid tokens.
    public static let xRequestID = Self("X-Request-ID")!
    /// The request id under the name the A/B image service's clients read.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let traceID = Self("Trace-Id")!
    /// The API key header of the inference platform, the lead-scoring API and the multi-tenant ops API.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let xAPIKey = Self("X-API-Key")!
    /// The multi-tenant ops API's admin header for `/ops/*`.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let xAdminKey = Self("X-Admin-Key")!
}

extension HTTPField.Name {
    /// A client's key for retrying a billed request safely (the IETF draft's and Stripe's name).
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let idempotencyKey = Self("Idempotency-Key")!
    /// Set on a response replayed for a repeated `Idempotency-Key`.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let idempotentReplayed = Self("Idempotent-Replayed")!
    /// Credits a billed response cost.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let xCreditsCharged = Self("X-Credits-Charged")!
    /// The tenant's balance after a billed response.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let xCreditsBalance = Self("X-Credits-Balance")!
}

extension HTTPField.Name {
    /// The burst a rate-limited route allows (IETF draft `RateLimit` header fields).
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let rateLimitLimit = Self("RateLimit-Limit")!
    /// Requests left right now.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let rateLimitRemaining = Self("RateLimit-Remaining")!
    /// Seconds until the limit is fully restored.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let rateLimitReset = Self("RateLimit-Reset")!
}

extension HTTPField.Name {
    /// The Open Inference Protocol's binary data extension: the length of the JSON part of a
    /// body whose tensors follow as raw bytes.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let inferenceHeaderContentLength = Self("Inference-Header-Content-Length")!
}

extension HTTPField.Name {
    /// The LLM assistant's marker on status answers: `api` or `legacy`, to count legacy use.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let xStatusPath = Self("X-Status-Path")!
    /// RFC 9745's marker of a deprecated resource: `@` and the Unix time it was deprecated.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let deprecation = Self("Deprecation")!
    /// RFC 8594's date a resource goes away.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let sunset = Self("Sunset")!
    /// RFC 8288's typed links (here the legacy path's successor).
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let link = Self("Link")!
    /// The variant (model) that answered a request to a split endpoint (`POST /v1/infer`).
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let xModelVariant = Self("X-Model-Variant")!
    /// An API client's session: the same session gets the same variant of a split endpoint.
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let xSessionID = Self("X-Session-ID")!
}
