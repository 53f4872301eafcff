import Foundation
import OutboxTestSupport
import Testing

/// Runs each program in Examples/ against a scripted server on loopback, so that the examples in the
/// guides keep working and not only compiling.
@Suite struct ExampleTests {
    /// Returns the example's executable in the build folder next to the test bundle (.build/debug).
    private func executable(_ name: String) throws -> URL {
        let testExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let url = testExecutable.deletingLastPathComponent().appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw ExampleError(description: "\(url.path) does not exist; build it with 'swift build --build-tests'")
        }
        return url
    }

    private struct ExampleError: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs an example with `OUTBOX_EXAMPLE_*` variables pointing at the loopback port, and returns its
    /// exit status and standard output. It is killed after 30 seconds.
    private func run(_ name: String, port: UInt16, environment extra: [String: String] = [:]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = try executable(name)
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OUTBOX_EXAMPLE_") }
        environment["OUTBOX_EXAMPLE_HOST"] = "127.0.0.1"
        environment["OUTBOX_EXAMPLE_PORT"] = String(port)
        environment.merge(extra) { $1 }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: watchdog)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func sendWithAttachmentRuns() throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])

        let (status, output) = try run("SendWithAttachmentExample", port: server.port)

        #expect(status == 0, "output: \(output)")
        let message = String(decoding: server.connections.first?.messages.first ?? [], as: UTF8.self)
        #expect(message.contains("filename=report.csv"))
        #expect(message.contains("Subject: The report you asked for"))
    }

    @Test func sendWithAttachmentReportsRejection() throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.defaultRecipientReply = "450 4.2.1 Mailbox busy"
        let server = try ScriptedServer(script: [.playESMTP(behavior)])

        let (status, output) = try run("SendWithAttachmentExample", port: server.port)

        #expect(status == 75, "output: \(output)")
        #expect(output.contains("reply code 450, enhanced code 4.2.1"))
    }

    @Test func outboxServiceRuns() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-example-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let server = try ScriptedServer(script: [.playESMTP(.init())])

        let (status, output) = try run("OutboxServiceExample", port: server.port, environment: ["OUTBOX_EXAMPLE_STORE": folder.path])

        #expect(status == 0, "output: \(output)")
        #expect(output.contains(" is in sent"))
        #expect(server.connections.first?.messages.count == 1)
    }

    @Test func inMemoryTransportExampleRuns() throws {
        let (status, output) = try run("TestWithInMemoryTransportExample", port: 9)

        #expect(status == 0, "output: \(output)")
        #expect(!output.contains("FAILED"))
    }

    @Test func oauth2TokenExampleRuns() throws {
        let token = "example-token-\(UUID().uuidString)"
        let server = try ScriptedServer(script: [
            .send("220 scripted.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250-scripted.test\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n"),
            .expectLine(prefix: "AUTH XOAUTH2 "),
            .send("235 2.7.0 Accepted\r\n"),
            .expectLine(prefix: "MAIL FROM:"),
            .send("250 OK\r\n"),
            .expectLine(prefix: "RCPT TO:"),
            .send("250 OK\r\n"),
            .expectLine("DATA"),
            .send("354 go ahead\r\n"),
            .readData,
            .send("250 2.0.0 queued\r\n"),
            .expectLine("QUIT"),
            .send("221 bye\r\n"),
            .close,
        ])

        let (status, output) = try run("OAuth2TokenExample", port: server.port, environment: ["OUTBOX_EXAMPLE_TOKEN": token])

        #expect(status == 0, "output: \(output)")
        #expect(server.failures.isEmpty)
        let authLine = server.connections.first?.lines.first { $0.hasPrefix("AUTH XOAUTH2 ") } ?? ""
        let encoded = String(authLine.dropFirst("AUTH XOAUTH2 ".count))
        let decoded = Data(base64Encoded: encoded).map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(decoded.contains("auth=Bearer \(token)"))
    }
}
