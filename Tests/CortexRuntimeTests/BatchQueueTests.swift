import Testing

@testable import CortexRuntime

/// Every transition of the dynamic batcher's queue, without threads, locks or sleeps: a request
/// is a name, and two stack when their first letters match.
@Suite("Batch queue")
struct BatchQueueTests {
    typealias Queue = BatchQueue<String>

    static func entry(_ id: UInt64, _ name: String, rows: Int = 1) -> Queue.Entry {
        Queue.Entry(id: id, rows: rows, enqueued: id * 10, request: name)
    }

    static func take(_ queue: inout Queue, maxRows: Int = 8) -> [String] {
        queue.take(maxRows: maxRows) { $0.first == $1.first }.map(\.request)
    }

    @Test("a request to an idle model leads at once; later ones wait; the leader takes itself and what stacks with it")
    func leadAndWait() {
        var queue = Queue(maxQueue: 8)
        #expect(queue.submit(Self.entry(1, "a1")) == .lead)
        #expect(queue.submit(Self.entry(2, "a2")) == .wait)
        #expect(queue.submit(Self.entry(3, "b1")) == .wait)
        #expect(queue.submit(Self.entry(4, "a3")) == .wait)
        #expect(queue.waitingRows == 4 && queue.oldestEnqueued == 10)
        #expect(Self.take(&queue) == ["a1", "a2", "a3"], "b1 has other dimensions: it waits for a batch of its own")
        #expect(queue.waiting.map(\.request) == ["b1"])
    }

    @Test("when a batch is done the oldest waiting request leads next; with nobody waiting the model goes idle")
    func handOff() {
        var queue = Queue(maxQueue: 8)
        _ = queue.submit(Self.entry(1, "a"))
        _ = queue.submit(Self.entry(2, "b"))
        _ = Self.take(&queue)
        guard case .lead(let next) = queue.finish() else { Issue.record("b waits: it leads"); return }
        #expect(next == "b" && queue.leader == 2)
        #expect(Self.take(&queue) == ["b"])
        guard case .idle = queue.finish() else { Issue.record("nobody waits"); return }
        #expect(!queue.running)
        #expect(queue.submit(Self.entry(3, "c")) == .lead, "idle again: the next request leads at once")
    }

    @Test("a batch never passes maxRows; a request too large for the room left waits for the next")
    func rowLimit() {
        var queue = Queue(maxQueue: 8)
        _ = queue.submit(Self.entry(1, "a1", rows: 3))
        _ = queue.submit(Self.entry(2, "a2", rows: 3))
        _ = queue.submit(Self.entry(3, "a3", rows: 1))
        #expect(Self.take(&queue, maxRows: 4) == ["a1", "a3"])
        #expect(queue.waiting.map(\.request) == ["a2"])
    }

    @Test("past maxQueue waiting requests, one more is refused and not queued")
    func full() {
        var queue = Queue(maxQueue: 2)
        #expect(queue.submit(Self.entry(1, "a")) == .lead)
        #expect(queue.submit(Self.entry(2, "b")) == .wait)
        #expect(queue.submit(Self.entry(3, "c")) == .full)
        #expect(queue.waiting.count == 2)
    }

    @Test("a waiter cancelled while queued leaves the queue to be failed; the leader and requests in a batch cannot be")
    func cancelled() {
        var queue = Queue(maxQueue: 8)
        _ = queue.submit(Self.entry(1, "a1"))
        _ = queue.submit(Self.entry(2, "b1"))
        _ = queue.submit(Self.entry(3, "b2"))
        let leader = queue.cancel(id: 1)
        #expect(leader == nil, "the leader's batch carries others: it runs")
        let waiter = queue.cancel(id: 3)
        #expect(waiter == "b2")
        let again = queue.cancel(id: 3)
        #expect(again == nil)
        _ = Self.take(&queue)
        guard case .lead = queue.finish() else { Issue.record("b1 leads"); return }
        let designated = queue.cancel(id: 2)
        #expect(designated == nil, "told to lead: it will take its batch")
        #expect(Self.take(&queue) == ["b1"], "the cancelled b2 is not in it")
    }

    @Test("a failing batch frees the model the same way: the next waiting request leads")
    func failingBatch() {
        var queue = Queue(maxQueue: 8)
        _ = queue.submit(Self.entry(1, "a"))
        _ = queue.submit(Self.entry(2, "a"))
        _ = queue.submit(Self.entry(3, "b"))
        #expect(Self.take(&queue) == ["a", "a"])
        // The batcher fails both callers with the model's error, then finishes the batch as usual.
        guard case .lead(let next) = queue.finish() else { Issue.record("b leads after the failure"); return }
        #expect(next == "b")
    }
}
