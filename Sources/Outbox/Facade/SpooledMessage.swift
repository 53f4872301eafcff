import Foundation
import MailMessage
import SMTPClient

/// A built message serialized for sending: in memory up to `memoryLimit` octets, and beyond that
/// in a temporary file of mode 0600, which `remove()` deletes. Attachments are read in chunks,
/// so a large attached file is never held whole in memory.
struct SpooledMessage {
    /// The largest message kept in memory, 1 MiB.
    static let memoryLimit = 1 << 20

    let content: any MessageContent
    private let fileURL: URL?

    /// Serializes the message, with CR LF line ends and without the Bcc field.
    ///
    /// - Throws: `MessageBuildError.fileUnreadable` for an attached file that cannot be read, or the
    ///   error of writing the temporary file.
    init(_ message: ComposedMessage) throws {
        var buffer: [UInt8] = []
        var file: (url: URL, handle: FileHandle)?
        do {
            try message.write { chunk in
                if let file {
                    try file.handle.write(contentsOf: chunk)
                    return
                }
                buffer += chunk
                if buffer.count > Self.memoryLimit {
                    let created = try Self.createTemporaryFile()
                    file = created
                    try created.handle.write(contentsOf: buffer)
                    buffer = []
                }
            }
            try file?.handle.close()
        } catch {
            if let file {
                try? file.handle.close()
                unlink(file.url.path)
            }
            throw error
        }
        if let file {
            content = FileMessageContent(url: file.url)
            fileURL = file.url
        } else {
            content = InMemoryMessageContent(buffer)
            fileURL = nil
        }
    }

    /// Deletes the temporary file, if the message needed one.
    func remove() {
        if let fileURL {
            unlink(fileURL.path)
        }
    }

    /// Creates a new file of mode 0600 in the temporary directory.
    private static func createTemporaryFile() throws -> (url: URL, handle: FileHandle) {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("outbox-message-\(UUID().uuidString).eml")
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return (url, FileHandle(fileDescriptor: descriptor, closeOnDealloc: true))
    }
}
