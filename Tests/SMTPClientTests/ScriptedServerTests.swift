import Foundation
import Glibc
@testable import OutboxTestSupport
import Testing
@testable import SMTPClient

/// A TCPConnection client for the scripted server, with helpers that read whole replies.
private final class TestClient {
    let connection: TCPConnection
    private var input: [UInt8] = []

    init(port: UInt16) throws {
        connection = try TCPConnection.connect(
            host: "127.0.0.1", port: port, connectTimeout: .seconds(2), deadline: nil,
            cancellation: CancellationSignal()
        )
    }

    func send(_ text: String) throws {
        try connection.write(Array(text.utf8), timeout: .seconds(2), deadline: nil)
    }

    /// Reads one whole reply: lines up to the first one whose code is followed by a space. Input after
    /// that reply, such as pipelined replies, stays buffered for the next call.
    func readReply(timeout: Duration = .seconds(2)) throws -> String {
        while true {
            if let end = endOfFirstReply() {
                let reply = String(decoding: input[..<end], as: UTF8.self)
                input.removeSubrange(..<end)
                return reply
            }
            input += try connection.read(timeout: timeout, deadline: nil)
        }
    }

    private func endOfFirstReply() -> Int? {
        var lineStart = 0
        var index = 0
        while index + 1 < input.count {
            if input[index] == 0x0D, input[index + 1] == 0x0A {
                let line = input[lineStart..<index]
                if line.count >= 4, line[lineStart + 3] == 0x20 {
                    return index + 2
                }
                lineStart = index + 2
                index += 2
            } else {
                index += 1
            }
        }
        return nil
    }
}

@Suite("ScriptedServer")
struct ScriptedServerTests {
    @Test func scriptRecordsLinesAndReplies() throws {
        let server = try ScriptedServer(script: [
            .send("220 scripted.test ready\r\n"),
            .expectLine("EHLO client.test"),
            .send("250-scripted.test\r\n250 PIPELINING\r\n"),
            .expectLine(prefix: "QUIT"),
            .send("221 bye\r\n"),
            .close,
        ])
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        #expect(try client.readReply() == "220 scripted.test ready\r\n")
        try client.send("EHLO client.test\r\n")
        #expect(try client.readReply() == "250-scripted.test\r\n250 PIPELINING\r\n")
        try client.send("QUIT\r\n")
        #expect(try client.readReply() == "221 bye\r\n")

        #expect(server.waitUntilFinished())
        let record = try #require(server.connections.first)
        #expect(record.lines == ["EHLO client.test", "QUIT"])
        #expect(record.receivedText == "EHLO client.test\r\nQUIT\r\n")
        #expect(record.failures.isEmpty)
        #expect(server.failures.isEmpty)
    }

    @Test func mismatchedLineIsRecorded() throws {
        let server = try ScriptedServer(script: [
            .expectLine("EHLO client.test"),
            .expectLine(matching: .anyLine),
            .close,
        ])
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        try client.send("HELO client.test\r\nNOOP\r\n")

        #expect(server.waitUntilFinished())
        #expect(server.failures == [
            "connection 0: step 0: expected a line equal to \"EHLO client.test\", received \"HELO client.test\"",
        ])
        #expect(server.connections.first?.lines == ["HELO client.test", "NOOP"])
    }

    @Test func missingLineTerminatorTimesOut() throws {
        let server = try ScriptedServer(script: [.expectLine("QUIT")], readTimeout: .milliseconds(200))
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        try client.send("QUIT\n")

        #expect(server.waitUntilFinished())
        let failures = server.failures
        #expect(failures.count == 1)
        #expect(failures.first?.contains("timed out waiting for a line equal to \"QUIT\"") == true)
    }

    @Test func readDataKeepsDotStuffingAndPipelinedCommands() throws {
        let server = try ScriptedServer(script: [
            .expectLine("DATA"),
            .send("354 go ahead\r\n"),
            .readData,
            .send("250 queued\r\n"),
            .expectLine("QUIT"),
            .close,
        ])
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        let data = "Subject: dots\r\n\r\n..leading dot\r\n.\r\n"

        try client.send("DATA\r\n")
        #expect(try client.readReply() == "354 go ahead\r\n")
        try client.send("Subject: dots\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n")
        #expect(try client.readReply() == "250 queued\r\n")

        #expect(server.waitUntilFinished())
        let record = try #require(server.connections.first)
        #expect(record.messages == [Array("Subject: dots\r\n\r\n..leading dot\r\n".utf8)])
        #expect(record.lines == ["DATA", "QUIT"])
        #expect(record.receivedText == "DATA\r\n" + data + "QUIT\r\n")
        #expect(record.failures.isEmpty)
    }

    @Test func readDataAcceptsEmptyMessage() throws {
        let server = try ScriptedServer(script: [.readData, .close])
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        try client.send(".\r\n")

        #expect(server.waitUntilFinished())
        #expect(server.connections.first?.messages == [[]])
        #expect(server.failures.isEmpty)
    }

    @Test func readSlowlyLimitsReadRate() throws {
        let server = try ScriptedServer(script: [
            .readSlowly(bytes: 8 * 1024, every: .milliseconds(50)),
            .send("250 queued\r\n"),
            .close,
        ])
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        let content = Array(String(repeating: String(repeating: "x", count: 1022) + "\r\n", count: 64).utf8)

        let (elapsed, result) = measure {
            try client.connection.write(content + Array(".\r\n".utf8), timeout: .seconds(10), deadline: nil)
            return try client.readReply(timeout: .seconds(10))
        }

        #expect(try result.get() == "250 queued\r\n")
        #expect(elapsed >= .milliseconds(350), "64 KiB at 8 KiB per 50 ms takes at least 7 intervals")
        #expect(server.waitUntilFinished())
        #expect(server.connections.first?.messages == [content])
        #expect(server.failures.isEmpty)
    }

    @Test func readSlowlyEndsQuietlyWhenClientCloses() throws {
        let server = try ScriptedServer(script: [
            .readSlowly(bytes: 1024, every: .milliseconds(50)),
            .send("250 queued\r\n"),
        ])
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        try client.send("Subject: cut short\r\n")
        client.connection.close()

        #expect(server.waitUntilFinished())
        #expect(server.connections.first?.messages == [])
        #expect(server.connections.first?.receivedText == "Subject: cut short\r\n")
        #expect(server.failures.isEmpty)
    }

    @Test func sendSlowlyDeliversByteByByte() throws {
        let server = try ScriptedServer(script: [.sendSlowly("220 ok\r\n", byteDelay: .milliseconds(20)), .close])
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        let (elapsed, result) = measure { try client.readReply() }

        #expect(try result.get() == "220 ok\r\n")
        #expect(elapsed >= .milliseconds(140), "8 bytes with 20 ms after each arrive over at least 7 delays")
        #expect(client.connection.bytesRead == 8)
    }

    @Test func stallMakesClientTimeOut() throws {
        let server = try ScriptedServer(script: [.stall(.seconds(5)), .send("220 late\r\n")])
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        let error = Result { try client.readReply(timeout: .milliseconds(200)) }.transportError

        #expect(error == .timedOut(
            operation: .read, peer: client.connection.remoteAddress, timeout: .milliseconds(200),
            expiredLimit: .stepTimeout
        ))
    }

    @Test func closeStepGivesClosedByPeer() throws {
        let server = try ScriptedServer(script: [.send("421 4.3.2 shutting down\r\n"), .close])
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        #expect(try client.readReply() == "421 4.3.2 shutting down\r\n")
        let error = Result { try client.readReply() }.transportError

        #expect(error == .closedByPeer(peer: client.connection.remoteAddress, operation: .read))
    }

    @Test func sendBytesSendsMalformedReply() throws {
        let server = try ScriptedServer(script: [.sendBytes([0x32, 0x35, 0xFF, 0x0A]), .close])
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        let bytes = try client.connection.read(timeout: .seconds(2), deadline: nil)

        #expect(bytes == [0x32, 0x35, 0xFF, 0x0A])
    }

    @Test func esmtpSessionWithRejectedRecipient() throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.capabilities = ["PIPELINING", "SIZE 1000"]
        behavior.recipientReplies = ["Nobody@Example.test": "550 5.1.1 No such user"]
        let server = try ScriptedServer(esmtp: behavior)
        defer { server.stop() }
        let client = try TestClient(port: server.port)

        #expect(try client.readReply() == "220 scripted.test ESMTP ready\r\n")
        try client.send("EHLO client.test\r\n")
        #expect(try client.readReply() == "250-scripted.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
        try client.send("MAIL FROM:<a@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<b@example.test>\r\n")
        #expect(try client.readReply() == "250 2.1.0 Sender OK\r\n")
        #expect(try client.readReply() == "550 5.1.1 No such user\r\n")
        #expect(try client.readReply() == "250 2.1.5 Recipient OK\r\n")
        try client.send("DATA\r\n")
        #expect(try client.readReply() == "354 Start mail input; end with <CRLF>.<CRLF>\r\n")
        try client.send("Subject: hi\r\n\r\nbody\r\n.\r\n")
        #expect(try client.readReply() == "250 2.0.0 Message accepted\r\n")
        try client.send("QUIT\r\n")
        #expect(try client.readReply() == "221 2.0.0 Closing connection\r\n")

        #expect(server.waitUntilFinished())
        let record = try #require(server.connections.first)
        #expect(record.lines == [
            "EHLO client.test", "MAIL FROM:<a@example.test>", "RCPT TO:<nobody@example.test>",
            "RCPT TO:<b@example.test>", "DATA", "QUIT",
        ])
        #expect(record.messages == [Array("Subject: hi\r\n\r\nbody\r\n".utf8)])
        #expect(record.failures.isEmpty)
    }

    @Test func esmtpRejectsDataWithoutRecipient() throws {
        let server = try ScriptedServer(esmtp: ScriptedServer.ESMTPBehavior())
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        _ = try client.readReply()

        try client.send("MAIL FROM:<a@example.test>\r\n")
        _ = try client.readReply()
        try client.send("DATA\r\n")

        #expect(try client.readReply().hasPrefix("503 "))
        try client.send("XYZZY\r\n")
        #expect(try client.readReply().hasPrefix("502 "))
    }

    @Test func scriptsFollowConnectionOrder() throws {
        let server = try ScriptedServer(scripts: [
            [.send("220 first\r\n"), .close],
            [.send("220 second\r\n"), .close],
        ])
        defer { server.stop() }

        let first = try TestClient(port: server.port)
        #expect(try first.readReply() == "220 first\r\n")
        let second = try TestClient(port: server.port)
        #expect(try second.readReply() == "220 second\r\n")
        let third = try TestClient(port: server.port)
        let error = Result { try third.readReply() }.transportError

        #expect(error == .closedByPeer(peer: third.connection.remoteAddress, operation: .read))
        #expect(server.waitUntilFinished(connectionCount: 3))
        #expect(server.failures == ["connection 2: unexpected connection: the server has no script for it"])
    }

    @Test func stopEndsStalledSessionQuickly() throws {
        let server = try ScriptedServer(script: [.stall(.seconds(30))])
        let client = try TestClient(port: server.port)
        _ = client
        #expect(server.waitUntilFinished(connectionCount: 1, timeout: .milliseconds(100)) == false)

        let (elapsed, _) = measure { server.stop() }

        #expect(elapsed < .milliseconds(500))
        #expect(server.connections.first?.isFinished == true)
    }
}

@Suite("ScriptedServer resources")
struct ScriptedServerResourceTests {
    @Test func stopJoinsThreadsAndClosesSockets() throws {
        let server = try ScriptedServer(script: [.send("220 ready\r\n"), .expectLine("QUIT")])
        let clients = try (0..<3).map { _ in try TestClient(port: server.port) }
        for client in clients {
            #expect(try client.readReply() == "220 ready\r\n")
        }
        let listenerInode = OpenDescriptors.socketInode(of: server.listenerDescriptor)
        #expect(OpenDescriptors.containsSocket(inode: listenerInode))

        server.stop()
        server.stop()

        let threadIDs = server.threadIDs
        #expect(threadIDs.count == 4, "one accept thread and three connection threads")
        #expect(!OpenDescriptors.containsSocket(inode: listenerInode))
        for threadID in threadIDs {
            #expect(!threadStillExists(threadID), "thread \(threadID) still runs after stop()")
        }
        #expect(server.connections.allSatisfy { $0.isFinished })
    }

    /// Returns whether /proc/self/task lists `threadID`, allowing the kernel 1 s to remove a joined thread.
    private func threadStillExists(_ threadID: Int) -> Bool {
        for _ in 0..<100 {
            if !FileManager.default.fileExists(atPath: "/proc/self/task/\(threadID)") {
                return false
            }
            usleep(10_000)
        }
        return true
    }
}
