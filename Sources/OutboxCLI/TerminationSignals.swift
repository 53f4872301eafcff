import Dispatch
import Foundation

/// SIGINT and SIGTERM as a request to stop, for the commands that run until they receive one.
enum TerminationSignals {
    /// Makes SIGINT and SIGTERM call `stop` instead of ending the process, and returns a function
    /// that restores the previous handlers.
    static func handle(command: String, console: Console, stop: @escaping @Sendable () -> Void) -> () -> Void {
        let signals: [(number: Int32, name: String)] = [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")]
        // The default action would end the process at once, so it is ignored while a dispatch source
        // receives the signal.
        let previousHandlers = signals.map { signal($0.number, SIG_IGN) }
        let sources = signals.map { entry in
            let source = DispatchSource.makeSignalSource(signal: entry.number, queue: .global())
            source.setEventHandler {
                console.printError("outbox \(command): received \(entry.name), stopping")
                stop()
            }
            source.resume()
            return source
        }
        return {
            for source in sources {
                source.cancel()
            }
            for (entry, handler) in zip(signals, previousHandlers) {
                signal(entry.number, handler)
            }
        }
    }
}
