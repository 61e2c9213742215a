import Foundation
import Logging
import Testing

@testable import CortexStore

/// Every transition of the group-commit queue, without threads, locks or sleeps: writes are
/// strings, a writer's wake-up is a name.
@Suite("Group-commit queue")
struct GroupCommitQueueTests {
    typealias Queue = GroupCommitQueue<String, String>

    static func batch(_ action: Queue.NextAction) -> [String]? {
        if case .run(let batch) = action { return batch.map(\.write) }
        return nil
    }

    @Test("a write to an idle queue is queued; the writer takes it, then parks")
    func oneWrite() {
        var queue = Queue(maximumBatch: 4)
        guard case .park = queue.next() else { Issue.record("nothing to do yet"); return }
        let step1 = queue.park("writer")
        #expect(step1)
        #expect(queue.isWriterParked)
        guard case .wake(let writer) = queue.submit(id: 1, "a") else { Issue.record("the parked writer is woken"); return }
        #expect(writer == "writer" && !queue.isWriterParked)
        let step2 = Self.batch(queue.next())
        #expect(step2 == ["a"])
        guard case .park = queue.next() else { Issue.record("drained"); return }
    }

    @Test("writes that arrive while the writer runs are queued, not woken, and go in the next batch, oldest first, at most maximumBatch")
    func batching() {
        var queue = Queue(maximumBatch: 2)
        for (id, write) in ["a", "b", "c"].enumerated() {
            guard case .queued = queue.submit(id: id, write) else { Issue.record("no writer parked"); return }
        }
        #expect(queue.waiting == 3)
        let step3 = Self.batch(queue.next())
        #expect(step3 == ["a", "b"])
        guard case .queued = queue.submit(id: 3, "d") else { Issue.record("the writer is busy"); return }
        let step4 = Self.batch(queue.next())
        #expect(step4 == ["c", "d"])
        #expect(queue.waiting == 0)
    }

    @Test("a writer that asks to park after work arrived does not park")
    func parkRace() {
        var queue = Queue(maximumBatch: 8)
        guard case .park = queue.next() else { Issue.record("idle"); return }
        _ = queue.submit(id: 1, "a")  // arrives between next() and park()
        let step5 = queue.park("writer")
        #expect(!step5, "it must look again instead of sleeping on a write")
        let step6 = Self.batch(queue.next())
        #expect(step6 == ["a"])
    }

    @Test("a waiter cancelled while queued is removed and handed back to fail; one in a running batch is not")
    func cancelled() {
        var queue = Queue(maximumBatch: 1)
        _ = queue.submit(id: 1, "a")
        _ = queue.submit(id: 2, "b")
        _ = queue.submit(id: 3, "c")
        let step7 = Self.batch(queue.next())
        #expect(step7 == ["a"])
        let step8 = queue.cancel(id: 1)
        #expect(step8 == nil, "already in a transaction: it runs and its caller gets the result")
        let step9 = queue.cancel(id: 2)
        #expect(step9 == "b")
        let step10 = queue.cancel(id: 2)
        #expect(step10 == nil, "only once")
        let step11 = queue.cancel(id: 99)
        #expect(step11 == nil)
        let step12 = Self.batch(queue.next())
        #expect(step12 == ["c"], "the cancelled write never runs")
    }

    @Test("a failing batch changes nothing in the queue: later writes still run, the writer goes on")
    func failingBatch() {
        var queue = Queue(maximumBatch: 2)
        _ = queue.submit(id: 1, "bad")
        _ = queue.submit(id: 2, "good")
        let step13 = Self.batch(queue.next())
        #expect(step13 == ["bad", "good"])
        // The committer retries each write of a failed batch alone; the queue only hands out the next batch.
        _ = queue.submit(id: 3, "later")
        let step14 = Self.batch(queue.next())
        #expect(step14 == ["later"])
    }

    @Test("closing wakes a parked writer, refuses new writes, lets queued ones run, then stops the writer")
    func closing() {
        var parked = Queue(maximumBatch: 4)
        _ = parked.next()
        let step15 = parked.park("writer")
        #expect(step15)
        let step16 = parked.close()
        #expect(step16 == "writer")
        guard case .stop = parked.next() else { Issue.record("nothing queued: stop"); return }

        var busy = Queue(maximumBatch: 4)
        _ = busy.submit(id: 1, "a")
        let step17 = busy.close()
        #expect(step17 == nil, "no writer parked")
        guard case .refused = busy.submit(id: 2, "b") else { Issue.record("closed"); return }
        let step18 = Self.batch(busy.next())
        #expect(step18 == ["a"], "queued before the close: still runs")
        guard case .stop = busy.next() else { Issue.record("drained: stop"); return }
        let step19 = busy.park("writer")
        #expect(!step19, "a closed queue never parks its writer")
    }

    @Test("many batches reuse the storage; none is lost or repeated")
    func longRun() {
        var queue = Queue(maximumBatch: 3)
        var seen: [String] = []
        for id in 0..<5000 {
            _ = queue.submit(id: id, String(id))
            if id % 7 == 0, let batch = Self.batch(queue.next()) { seen += batch }
        }
        while let batch = Self.batch(queue.next()) { seen += batch }
        #expect(seen == (0..<5000).map(String.init))
    }

    @Test("a store closed at once, before its writer started, still ends: the writer sees the closed queue and never waits")
    func closedBeforeTheWriterStarts() async throws {
        let path = SQLiteStoreTests.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        // The order a scope whose body returns at once can take: closed (its writer thread shut
        // down) before the child task that runs the store has started. The writer must see the
        // closed queue and return; hopping to the closed writer thread, it would wait forever.
        let store = try await StateStore.openSQLite(path: path, logger: Logger(label: "test"))
        await store.close()
        await store.run()
        var queue = GroupCommitQueue<String, String>(maximumBatch: 1)
        _ = queue.close()
        #expect(queue.isClosed)
    }
}
