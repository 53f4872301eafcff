import Foundation
import OutboxCLI

// A write to a closed pipe must fail with EPIPE, not end the process before it can report.
signal(SIGPIPE, SIG_IGN)
exit(
    await OutboxCommand.run(
        programName: CommandLine.arguments.first ?? "outbox", arguments: Array(CommandLine.arguments.dropFirst())))
