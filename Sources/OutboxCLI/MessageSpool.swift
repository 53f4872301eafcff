import Foundation

/// A copy of the input message in a private temporary file, so that it can be scanned, have its
/// header fields read, and then be sent, whatever its size and wherever it came from (a pipe cannot
/// be read twice).
///
/// The file is created with mode 0600 and removed when the spool is released.
final class MessageSpool: Sendable {
    let url: URL
    /// The size of the spooled message in octets.
    let size: Int
    /// Whether the spool made the file and removes it when released.
    private let ownsFile: Bool

    private init(url: URL, size: Int, ownsFile: Bool = true) {
        self.url = url
        self.size = size
        self.ownsFile = ownsFile
    }

    deinit {
        if ownsFile {
            try? FileManager.default.removeItem(at: url)
        }
    }

    /// Uses a message file in place, without copying it. The file must not change while it is sent.
    static func existingFile(_ url: URL) throws -> MessageSpool {
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        return MessageSpool(url: url, size: size, ownsFile: false)
    }

    /// Copies the input into a spool file.
    ///
    /// - Parameter dotEndsInput: when true, a line holding only "." ends the message, as sendmail
    ///   does for standard input unless it is given `-i` or `-oi`. The "." line and what follows it
    ///   are not part of the message.
    static func spool(
        from input: FileHandle, dotEndsInput: Bool, directory: URL = FileManager.default.temporaryDirectory
    ) throws -> MessageSpool {
        let url = directory.appendingPathComponent("outbox-\(UUID().uuidString).eml")
        guard FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600])
        else {
            throw WriteError(path: url.path, reason: String(cString: strerror(errno)))
        }
        var spool: MessageSpool? = nil
        do {
            let output = try FileHandle(forWritingTo: url)
            defer { try? output.close() }
            var terminator = DotLineDetector(enabled: dotEndsInput)
            var size = 0
            while let data = try input.read(upToCount: 64 * 1024), !data.isEmpty {
                let (kept, ended) = terminator.consume(Array(data))
                try write(kept, to: output, path: url.path)
                size += kept.count
                if ended { break }
            }
            let rest = terminator.finish()
            try write(rest, to: output, path: url.path)
            size += rest.count
            spool = MessageSpool(url: url, size: size)
        } catch {
            try? FileManager.default.removeItem(at: url)
            throw error
        }
        return spool!
    }

    /// A failure to create or write the spool file, as opposed to a failure to read the input.
    struct WriteError: Error, CustomStringConvertible {
        let path: String
        /// The system's text for the error, such as "No space left on device".
        let reason: String

        var description: String {
            "Writing the message to the temporary file \(path) failed: \(reason). Free some space there, "
                + "or set TMPDIR to a folder with more room."
        }
    }

    private static func write(_ bytes: [UInt8], to output: FileHandle, path: String) throws {
        do {
            try output.write(contentsOf: bytes)
        } catch {
            throw WriteError(path: path, reason: systemReason(for: error))
        }
    }

    /// Returns the strerror text of the POSIX error under a Foundation error, or its own description.
    private static func systemReason(for error: Error) -> String {
        let nsError = error as NSError
        if nsError.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(nsError.code)))
        }
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return error.localizedDescription
    }
}

/// Finds a line holding only "." (ended by LF or CRLF) in a stream of chunks.
struct DotLineDetector {
    let enabled: Bool
    private var atLineStart = true
    /// Bytes of a possible "." line held back until the line is known: "." or ".\r".
    private var held: [UInt8] = []
    private(set) var ended = false

    init(enabled: Bool) {
        self.enabled = enabled
    }

    /// Returns the bytes of the chunk that belong to the message, and whether the "." line was found.
    mutating func consume(_ chunk: [UInt8]) -> (kept: [UInt8], ended: Bool) {
        guard enabled, !ended else { return (ended ? [] : chunk, ended) }
        var kept: [UInt8] = []
        kept.reserveCapacity(chunk.count)
        for byte in chunk {
            if !held.isEmpty {
                if byte == UInt8(ascii: "\n") {
                    ended = true
                    held = []
                    return (kept, true)
                }
                if byte == UInt8(ascii: "\r"), held == [UInt8(ascii: ".")] {
                    held.append(byte)
                    continue
                }
                kept += held
                held = []
                atLineStart = false
            }
            if atLineStart, byte == UInt8(ascii: ".") {
                held = [byte]
                continue
            }
            kept.append(byte)
            atLineStart = byte == UInt8(ascii: "\n")
        }
        return (kept, false)
    }

    /// Returns bytes held back at the end of the input, which were not a complete "." line.
    mutating func finish() -> [UInt8] {
        defer { held = [] }
        return ended ? [] : held
    }
}
