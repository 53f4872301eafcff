import Foundation
import OutboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Checks that the real SMTP servers of OutboxTestSupport start, take a session and deliver,
/// using a minimal SMTP client of its own so that a failure here points at the harness.
@Suite("Test server harness")
struct TestServerHarnessTests {
    @Test(
        "Postfix delivers and rejects reject- recipients",
        .enabled(if: PostfixInstance.isAvailable, Comment(rawValue: PostfixInstance.skipComment))
    )
    func postfixDeliversAndRejects() async throws {
        let postfix = try await PostfixInstance.start()
        defer { try? postfix.stop() }

        let message = "From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: harness\r\n\r\n"
            + ".starts with a dot\r\nGrüße\r\n"
        let session = try HarnessSMTPConnection(port: postfix.port)
        #expect(try session.readReply().code == 220)
        let ehlo = try session.command("EHLO client.example.test")
        #expect(ehlo.code == 250)
        #expect(ehlo.lines.contains("SMTPUTF8"))
        #expect(try session.command("MAIL FROM:<sender@example.test> BODY=8BITMIME").code == 250)
        #expect(try session.command("RCPT TO:<rcpt@example.test>").code == 250)
        #expect(try session.command("RCPT TO:<reject-me@example.test>").code == 550)
        #expect(try session.command("RCPT TO:<other@example.org>").code == 250)
        #expect(try session.command("DATA").code == 354)
        #expect(try session.sendData(message).code == 250)
        #expect(try session.command("QUIT").code == 221)

        let files = try await postfix.waitForDeliveries(count: 2)
        #expect(files.count == 2)
        let delivered = try files.map { try DeliveredMessage(contentsOf: $0) }
        #expect(Set(delivered.map(\.deliveredTo)) == ["rcpt@example.test", "other@example.org"])
        for copy in delivered {
            #expect(copy.envelopeSender == "sender@example.test")
            #expect(copy.content == Data(message.utf8))
        }

        try postfix.stop()
        #expect(!FileManager.default.fileExists(atPath: postfix.directory.path))
    }

    @Test("smtp-sink accepts and dumps a message", .enabled(if: SMTPSink.isAvailable, Comment(rawValue: SMTPSink.skipComment)))
    func smtpSinkAcceptsAndDumps() async throws {
        let sink = try await SMTPSink.start(dumpsMessages: true)
        defer { sink.stop() }

        let session = try HarnessSMTPConnection(port: sink.port)
        #expect(try session.readReply().code == 220)
        #expect(try session.command("EHLO client.example.test").code == 250)
        #expect(try session.command("MAIL FROM:<sender@example.test>").code == 250)
        #expect(try session.command("RCPT TO:<rcpt@example.test>").code == 250)
        #expect(try session.command("DATA").code == 354)
        #expect(try session.sendData("Subject: sink\r\n\r\nbody\r\n").code == 250)
        #expect(try session.command("QUIT").code == 221)

        try await sink.waitForMessages(count: 1)
        #expect(sink.receivedMessageCount() == 1)
        let dumps = try sink.dumpedMessages()
        #expect(dumps.count == 1)
        let dump = try String(contentsOf: try #require(dumps.first), encoding: .utf8)
        #expect(dump.contains("X-Rcpt-Args: <rcpt@example.test>\n"))
        #expect(dump.hasSuffix("Subject: sink\n\nbody\n\n"))
    }

    @Test("smtp-sink -Q DATA replies 421", .enabled(if: SMTPSink.isAvailable, Comment(rawValue: SMTPSink.skipComment)))
    func smtpSinkReplies421AfterData() async throws {
        let sink = try await SMTPSink.start(options: ["-Q", "DATA"])
        defer { sink.stop() }

        let session = try HarnessSMTPConnection(port: sink.port)
        #expect(try session.readReply().code == 220)
        #expect(try session.command("EHLO client.example.test").code == 250)
        #expect(try session.command("MAIL FROM:<sender@example.test>").code == 250)
        #expect(try session.command("RCPT TO:<rcpt@example.test>").code == 250)
        #expect(try session.command("DATA").code == 421)
    }
}

/// A blocking SMTP client over a raw socket to 127.0.0.1, just enough to drive the test servers.
private final class HarnessSMTPConnection {
    struct Reply {
        let code: Int
        /// The text after the code, one element per reply line.
        let lines: [String]
    }

    struct ConnectionError: Error, CustomStringConvertible {
        let description: String
    }

    private let descriptor: Int32
    private var buffer: [UInt8] = []

    init(port: UInt16, timeoutSeconds: Int = 10) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else {
            throw ConnectionError(description: "socket() failed: \(String(cString: strerror(errno)))")
        }

        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw ConnectionError(description: "connect() to 127.0.0.1:\(port) failed: \(reason)")
        }
    }

    deinit {
        close(descriptor)
    }

    func command(_ line: String) throws -> Reply {
        try send(line + "\r\n")
        return try readReply()
    }

    /// Sends a message after a 354 reply, dot-stuffed and ended by ".", and reads the reply.
    func sendData(_ message: String) throws -> Reply {
        var lines = message.components(separatedBy: "\r\n")
        if lines.last == "" {
            lines.removeLast()
        }
        let stuffed = lines.map { $0.hasPrefix(".") ? "." + $0 : $0 }
        try send(stuffed.joined(separator: "\r\n") + "\r\n.\r\n")
        return try readReply()
    }

    func readReply() throws -> Reply {
        var lines: [String] = []
        while true {
            let line = try readLine()
            guard line.count >= 3, let code = Int(line.prefix(3)) else {
                throw ConnectionError(description: "invalid SMTP reply line: \(line)")
            }
            lines.append(String(line.dropFirst(4)))
            if line.count == 3 || line[line.index(line.startIndex, offsetBy: 3)] == " " {
                return Reply(code: code, lines: lines)
            }
        }
    }

    private func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            guard written > 0 else {
                throw ConnectionError(description: "write() failed: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    private func readLine() throws -> String {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                if line.last == UInt8(ascii: "\r") {
                    line.removeLast()
                }
                return String(decoding: line, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else {
                let reason = count == 0 ? "connection closed" : String(cString: strerror(errno))
                throw ConnectionError(description: "read() failed: \(reason)")
            }
            buffer += chunk[..<count]
        }
    }
}
