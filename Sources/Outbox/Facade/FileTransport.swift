import Foundation
import SMTPClient

/// A transport that writes each message to a `.eml` file in a directory instead of sending it,
/// for development and for handing messages to another program.
///
/// Each file is created with mode 0600, written, flushed to disk and renamed into place, so a
/// reader of the directory never finds a partial message. The file contains the message exactly as
/// it would be sent, with CR LF line ends. The envelope is not written, and Bcc recipients appear
/// only in the envelope.
public struct FileTransport: MailTransport {
    /// The directory the files go to.
    public let directory: URL

    /// Creates a transport that writes to `directory`, which is created (mode 0700) when missing.
    ///
    /// - Throws: `MailError` with kind `transportFailed` when the directory cannot be created.
    public init(directory: URL) throws(MailError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw MailError(
                kind: .transportFailed, detail: "creating the directory \(directory.path) failed: \(error)",
                isRetryable: false)
        }
    }

    public func send(_ message: OutgoingMessage, envelope: Envelope) async throws(MailError) -> SendResult {
        if Task.isCancelled { throw MailError.cancelled }
        guard !envelope.recipients.isEmpty else {
            throw MailError(kind: .invalidEnvelope, detail: "the message has no recipients", isRetryable: false)
        }
        let name = Self.fileName()
        let final = directory.appendingPathComponent(name + ".eml")
        let temporary = directory.appendingPathComponent("." + name + ".tmp")
        do {
            try write(message, to: temporary)
            guard rename(temporary.path, final.path) == 0 else {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
        } catch {
            unlink(temporary.path)
            throw MailError.wholeMessage(
                .transportFailed, "writing \(final.path) failed: \(error)", envelope: envelope, isRetryable: true)
        }
        return .allAccepted(envelope, fileURL: final)
    }

    /// Writes the content to a new file of mode 0600 and flushes it to disk.
    private func write(_ message: OutgoingMessage, to url: URL) throws {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        var reader = try message.content.makeReader()
        while let chunk = try reader.read(maxLength: 64 * 1024) {
            try handle.write(contentsOf: chunk)
        }
        try handle.synchronize()
        try handle.close()
    }

    /// Returns a name that sorts by time and is unique: the UTC time to the microsecond and a UUID.
    private static func fileName() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]
        let stamp = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(now.tv_sec)))
        let micros = String(format: "%06ld", Int(now.tv_nsec / 1000))
        return "\(stamp).\(micros)-\(UUID().uuidString)"
    }
}
