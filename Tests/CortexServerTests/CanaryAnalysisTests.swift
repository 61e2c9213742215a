import CortexCore
import Testing

@testable import CortexServer

/// The canary's decisions and the shadow's comparisons as values: no server, no clock, no threads.
@Suite("Canary analysis and shadow comparison (state machines)")
struct CanaryAnalysisTests {
    static func policy(steps: [Double] = [10, 50, 100], minRequests: Int = 20) -> CanaryPolicy {
        var policy = CanaryPolicy()
        policy.steps = steps
        policy.minRequests = minRequests
        policy.maxErrorRateIncrease = 0.05
        policy.maxLatencyRatio = 1.5
        policy.latencyAllowanceMilliseconds = 1
        return policy
    }

    /// Feeds `primary` answers of vA then `candidate` of vB; the decisions made on the way.
    static func feed(
        _ analysis: inout CanaryAnalysis, primary: Int, candidate: Int, candidateFails: (Int) -> Bool = { _ in false },
        primaryLatency: Double = 0.010, candidateLatency: Double = 0.010
    ) -> [CanaryAnalysis.Decision] {
        var decisions: [CanaryAnalysis.Decision] = []
        for _ in 0..<primary {
            if let decision = analysis.record(candidate: false, success: true, latency: primaryLatency) { decisions.append(decision) }
        }
        for index in 0..<candidate {
            let failed = candidateFails(index)
            if let decision = analysis.record(candidate: true, success: !failed, latency: candidateLatency) { decisions.append(decision) }
        }
        return decisions
    }

    @Test("a healthy candidate steps 10% -> 50%, then is promoted (the next step is 100%); each step waits for its minimum counts")
    func healthy() {
        var analysis = CanaryAnalysis(policy: Self.policy())
        #expect(Self.feed(&analysis, primary: 100, candidate: 19).isEmpty, "19 candidate answers are one short of a step")
        let first = Self.feed(&analysis, primary: 0, candidate: 1)
        guard case .step(to: 1, let figures)? = first.first, first.count == 1 else {
            Issue.record("expected one step to 1, got \(first)")
            return
        }
        #expect(figures.share == 0.1 && figures.primaryRequests == 100 && figures.candidateRequests == 20)
        #expect(figures.candidateErrorRate == 0 && figures.candidateP99 == 0.010)
        #expect(analysis.step == 1 && analysis.primary.requests == 0 && analysis.candidate.requests == 0, "the windows start afresh")
        let second = Self.feed(&analysis, primary: 20, candidate: 20)
        guard case .promote(let last)? = second.first, second.count == 1 else {
            Issue.record("expected a promotion, got \(second)")
            return
        }
        #expect(last.share == 0.5)
        #expect(analysis.finished)
        #expect(Self.feed(&analysis, primary: 100, candidate: 100).isEmpty, "nothing after the end")
    }

    @Test("without 100 among the steps, passing the last one promotes")
    func lastStep() {
        var analysis = CanaryAnalysis(policy: Self.policy(steps: [5, 25], minRequests: 3))
        let decisions = Self.feed(&analysis, primary: 3, candidate: 3) + Self.feed(&analysis, primary: 3, candidate: 3)
        #expect(decisions.count == 2)
        if case .step(to: 1, _) = decisions.first {} else { Issue.record("\(decisions)") }
        if case .promote = decisions.last {} else { Issue.record("\(decisions)") }
    }

    @Test("a candidate failing more than the primary plus the margin is rolled back, with the figures that decided it")
    func errorRate() {
        var analysis = CanaryAnalysis(policy: Self.policy())
        // 2 of 20 failed: 10% against the primary's 0%, past the 5-point margin.
        let decisions = Self.feed(&analysis, primary: 50, candidate: 20) { $0 % 10 == 0 }
        guard case .rollBack(let reason, let figures)? = decisions.first, decisions.count == 1 else {
            Issue.record("expected a rollback, got \(decisions)")
            return
        }
        #expect(reason == "error rate" && figures.candidateErrorRate == 0.1 && figures.primaryErrorRate == 0)
        #expect(analysis.finished)
        // 1 of 20 (5%) is within the margin.
        var within = CanaryAnalysis(policy: Self.policy())
        let passed = Self.feed(&within, primary: 50, candidate: 20) { $0 == 0 }
        if case .step(to: 1, _) = passed.first {} else { Issue.record("5% should pass: \(passed)") }
    }

    @Test("a candidate slower than ratio x primary p99 + allowance is rolled back; within it, it steps up")
    func latency() {
        var slow = CanaryAnalysis(policy: Self.policy())
        let decisions = Self.feed(&slow, primary: 20, candidate: 20, primaryLatency: 0.010, candidateLatency: 0.0161)
        guard case .rollBack(let reason, let figures)? = decisions.first else {
            Issue.record("expected a rollback, got \(decisions)")
            return
        }
        #expect(reason == "p99 latency" && figures.candidateP99 == 0.0161 && figures.primaryP99 == 0.010)
        // 10 ms x 1.5 + 1 ms = 16 ms: 15.9 ms passes.
        var fine = CanaryAnalysis(policy: Self.policy())
        let passed = Self.feed(&fine, primary: 20, candidate: 20, primaryLatency: 0.010, candidateLatency: 0.0159)
        if case .step(to: 1, _) = passed.first {} else { Issue.record("15.9 ms should pass: \(passed)") }
    }

    @Test("p99 is the nearest rank: of 100 latencies 1..100 ms it is 99 ms; failures have no latency")
    func percentile() {
        var analysis = CanaryAnalysis(policy: Self.policy(minRequests: 1000))
        for millisecond in (1...100).shuffled() {
            _ = analysis.record(candidate: true, success: true, latency: Double(millisecond) / 1000)
        }
        _ = analysis.record(candidate: true, success: false, latency: 10)
        #expect(analysis.candidate.p99 == 0.099 && analysis.candidate.requests == 101 && analysis.candidate.errors == 1)
    }

    @Test("TrafficControl applies a decision at once: the split moves and the verdict is queued for the store")
    func control() async {
        var settings = CortexConfiguration.Traffic()
        settings.canaryEnabled = true
        settings.canary = Self.policy(steps: [10, 100], minRequests: 2)
        let control = TrafficControl(settings)
        #expect(control.state.split?.variants.map(\.weight) == [0.9, 0.1])
        for model in ["vA", "vA", "vB"] { #expect(control.recordCanary(model: model, success: true, latency: 0.001) == nil) }
        #expect(control.recordCanary(model: "other", success: false, latency: 0) == nil, "other models are not evidence")
        let decision = control.recordCanary(model: "vB", success: false, latency: 0)
        guard case .rollBack? = decision else {
            Issue.record("1 failure in 2 is a breach: \(String(describing: decision))")
            return
        }
        #expect(!control.settings.canaryEnabled && control.settings.weightB == 0 && control.state.split == nil, "vB at 0 at once")
        var verdicts = control.verdicts.makeAsyncIterator()
        let verdict = await verdicts.next()
        #expect(verdict?.basedOn == 0 && verdict?.settings.canaryEnabled == false)
    }

    @Test("a named endpoint's canary judges its own variants by name: the candidate promoted to weight 1, vA and vB no evidence")
    func namedEndpoint() {
        var settings = NamedEndpointTests.endpoint(1, 0)
        settings.canaryEnabled = true
        settings.canary = Self.policy(steps: [50, 100], minRequests: 2)
        let control = TrafficControl(settings)
        #expect(control.endpoint == "scorer" && control.state.split?.variants.map(\.model) == ["scorer-a", "scorer-b"])
        for model in ["vA", "vB", "vB"] { #expect(control.recordCanary(model: model, success: true, latency: 0.001) == nil) }
        for model in ["scorer-a", "scorer-a", "scorer-b"] {
            #expect(control.recordCanary(model: model, success: true, latency: 0.001) == nil)
        }
        let decision = control.recordCanary(model: "scorer-b", success: true, latency: 0.001)
        guard case .promote? = decision else {
            Issue.record("a healthy candidate past the step before 100% is promoted: \(String(describing: decision))")
            return
        }
        let after = control.settings
        #expect(!after.canaryEnabled && after.weightA == 0 && after.weightB == 1 && after.variantB == "scorer-b")
    }

    @Test("a classifier's answers compare by top class row by row; a scorer's by absolute difference; other shapes not at all")
    func comparison() {
        func tensor(_ values: [Double], _ shape: [Int]) -> Tensor {
            Tensor(name: "y", datatype: .fp32, shape: TensorShape(shape), data: .float(values))
        }
        let primary = tensor([0.1, 0.9, 0.8, 0.2, 0.3, 0.7], [3, 2])
        let shadow = tensor([0.2, 0.8, 0.4, 0.6, 0.1, 0.9], [3, 2])
        #expect(ShadowComparison(primary: [primary], shadow: [shadow]) == .topClass(agreed: 2, rows: 3))
        #expect(
            ShadowComparison(primary: [tensor([1, 2.5], [2, 1])], shadow: [tensor([1.5, 2], [2, 1])]) == .differences([0.5, 0.5]))
        #expect(ShadowComparison(primary: [tensor([1], [1])], shadow: [tensor([1, 2], [2])]) == nil)
        #expect(ShadowComparison(primary: [], shadow: [shadow]) == nil)
    }
}
