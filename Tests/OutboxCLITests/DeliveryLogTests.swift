import Foundation
import Testing
@testable import OutboxCLI

@Suite struct DeliveryLogTests {
    private var entry: DeliveryLogEntry {
        DeliveryLogEntry(
            host: "mail.example.test", tls: "on", user: "jane", from: "jane@example.test",
            recipients: ["a@example.test", "b@example.test"], size: 1234, smtpStatus: 250,
            smtpMessage: "250 2.0.0 Ok: queued as ABC", error: nil, exitCode: .success)
    }

    @Test func syslogLineHasMsmtpFields() {
        #expect(entry.line == "host=mail.example.test tls=on auth=on user=jane from=jane@example.test "
            + "recipients=a@example.test,b@example.test mailsize=1234 smtpstatus=250 "
            + "smtpmsg='250 2.0.0 Ok: queued as ABC' exitcode=EX_OK")
    }

    @Test func failureLineHasErrorAndStatus() {
        var failed = entry
        failed.user = nil
        failed.smtpStatus = 451
        failed.smtpMessage = "451 4.3.0 Try 'later'\r\nforged=line"
        failed.error = "rejected"
        failed.exitCode = .temporaryFailure
        let line = failed.line
        #expect(line.contains(" auth=off from="))
        #expect(!line.contains("user="))
        #expect(line.contains(" smtpmsg='451 4.3.0 Try \"later\"  forged=line' errormsg='rejected' exitcode=EX_TEMPFAIL"))
        #expect(!line.contains("\n"))
    }

    @Test func fileLineStartsWithDate() {
        let date = Date(timeIntervalSince1970: 0)
        let line = DeliveryLog.fileLine("host=x", date: date)
        #expect(line.hasSuffix(" host=x"))
        #expect(line.count == "Jan 01 00:00:00 host=x".count)
    }

    @Test func exitCodeNames() {
        #expect(ExitCode.configuration.name == "EX_CONFIG")
        #expect(ExitCode.noUser.name == "EX_NOUSER")
    }
}
