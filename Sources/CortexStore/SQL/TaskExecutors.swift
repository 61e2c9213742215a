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

    /// How the thread is scheduled.
    package enum Scheduling: Sendable {
        /// As every other thread.
        case normal
        /// Only on a core no other thread wants (Linux's `SCHED_IDLE`): work that must never slow
        /// the rest (shadow traffic) runs in the gaps, and waits while the machine is busy.
        case idle
    }

    /// Starts the thread, named for `top` and debuggers.
    package init(name: String, scheduling: Scheduling = .normal) {
        let thread = Thread {
            #if os(Linux)
                // A new thread inherits its creator's name on Linux, whatever `Thread.name` says:
                // set it on the thread itself (at most 15 bytes), so `top -H` and `ps -L` show it.
                if let comm = fopen("/proc/thread-self/comm", "w") {
                    fputs(String(decoding: name.utf8.prefix(15), as: UTF8.self), comm)
                    fclose(comm)
                }
                if scheduling == .idle {
                    // SCHED_IDLE is 5 (linux/sched.h; Swift's Glibc module leaves the constant
                    // out). Linux schedules threads one by one: pid 0 is the calling thread.
                    var parameters = sched_param()
                    _ = sched_setscheduler(0, 5, &parameters)
                }
            #endif
            self.run()
        }
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
