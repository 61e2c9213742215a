import Foundation
import NIOCore

/// A task executor on a NIO event loop: a task pinned to the loop that owns its sockets awaits
/// their I/O without a thread hop on every round trip.
final class EventLoopExecutor: TaskExecutor {
    let loop: any EventLoop

    init(loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

/// A task executor with one thread of its own: work pinned to it never waits behind the event
/// loops' HTTP work and may block (on SQLite's fsync, on a test's gate) without stalling them.
/// `package`: the runtime's tests hold a model run on one.
package final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false

    /// Starts the thread, named for `top` and debuggers.
    package init(name: String) {
        let thread = Thread { self.run() }
        thread.name = name
        thread.start()
    }

    /// Lets the thread end once the work already enqueued has run.
    package func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let ready = jobs
            jobs.removeAll(keepingCapacity: true)
            condition.unlock()
            for job in ready {
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }
}
