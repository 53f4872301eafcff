import Foundation
import SMTPCore

/// The bytes of an RFC 5322 message, read in chunks so that a message of any size is never held whole.
///
/// The client reads the content once to learn its size and whether it has 8-bit data (needed before
/// MAIL), and a second time to send it when its encoded form is larger than one chunk of 64 KiB.
/// `makeReader()` must therefore start from the beginning each time.
public protocol MessageContent: Sendable {
    func makeReader() throws -> any MessageContentReader
}

/// Reads message content front to back.
public protocol MessageContentReader {
    /// Returns the next chunk of at most `maxLength` bytes, or nil at the end.
    mutating func read(maxLength: Int) throws -> ArraySlice<UInt8>?
}

/// Message content held in memory.
public struct InMemoryMessageContent: MessageContent {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public func makeReader() throws -> any MessageContentReader {
        Reader(bytes: bytes)
    }

    private struct Reader: MessageContentReader {
        let bytes: [UInt8]
        var offset = 0

        mutating func read(maxLength: Int) throws -> ArraySlice<UInt8>? {
            guard offset < bytes.count else { return nil }
            let end = min(offset + maxLength, bytes.count)
            defer { offset = end }
            return bytes[offset..<end]
        }
    }
}

/// Message content read from a file, optionally from an offset onwards.
public struct FileMessageContent: MessageContent {
    public let url: URL
    public let offset: UInt64

    public init(url: URL, offset: UInt64 = 0) {
        self.url = url
        self.offset = offset
    }

    public func makeReader() throws -> any MessageContentReader {
        let handle = try FileHandle(forReadingFrom: url)
        try handle.seek(toOffset: offset)
        return Reader(handle: handle)
    }

    private final class Reader: MessageContentReader {
        let handle: FileHandle

        init(handle: FileHandle) {
            self.handle = handle
        }

        deinit {
            try? handle.close()
        }

        func read(maxLength: Int) throws -> ArraySlice<UInt8>? {
            guard let data = try handle.read(upToCount: maxLength), !data.isEmpty else { return nil }
            return ArraySlice(data)
        }
    }
}

/// Several contents sent one after the other, such as rewritten header fields followed by the body
/// from a file.
public struct ConcatenatedMessageContent: MessageContent {
    public let parts: [any MessageContent]

    public init(_ parts: [any MessageContent]) {
        self.parts = parts
    }

    public func makeReader() throws -> any MessageContentReader {
        Reader(parts: parts[...])
    }

    private struct Reader: MessageContentReader {
        var parts: ArraySlice<any MessageContent>
        var current: (any MessageContentReader)?

        mutating func read(maxLength: Int) throws -> ArraySlice<UInt8>? {
            while true {
                if current == nil {
                    guard let next = parts.popFirst() else { return nil }
                    current = try next.makeReader()
                }
                if let chunk = try current!.read(maxLength: maxLength) {
                    return chunk
                }
                current = nil
            }
        }
    }
}

/// A message whose content has been scanned and found sendable: no line over 998 octets. Its
/// statistics tell the session what to declare with MAIL.
public struct OutgoingMessage: Sendable {
    public let content: any MessageContent
    public let statistics: DataEncoder.Statistics
    /// The whole encoded content, ending with CRLF.CRLF, when it fits in one chunk. Sending then writes
    /// it as it is instead of reading and encoding the content again.
    let encoded: [UInt8]?

    /// The size of the chunks read from the content, and of the blocks of encoded content that must each
    /// be sent within the data-block timeout: 64 KiB.
    static let chunkSize = 64 * 1024

    /// Scans the content once.
    ///
    /// - Throws: `DataEncodingError.lineTooLong` naming the first line over 998 octets, or the error
    ///   of reading the content.
    public init(content: any MessageContent) throws {
        var reader = try content.makeReader()
        var encoder = DataEncoder()
        // The encoded content is kept while it fits in one chunk, and dropped at the first that overflows it.
        var output: [UInt8] = []
        var keepsOutput = true
        while let chunk = try reader.read(maxLength: Self.chunkSize) {
            if !keepsOutput {
                output.removeAll(keepingCapacity: true)
            }
            try encoder.encode(chunk, into: &output)
            if output.count > Self.chunkSize {
                keepsOutput = false
            }
        }
        if !keepsOutput {
            output.removeAll(keepingCapacity: true)
        }
        encoder.finish(into: &output)
        self.content = content
        self.statistics = encoder.statistics
        self.encoded = keepsOutput && output.count <= Self.chunkSize ? output : nil
    }

    /// Content in memory, scanned.
    public init(bytes: [UInt8]) throws {
        try self.init(content: InMemoryMessageContent(bytes))
    }
}

/// The envelope of one message: who it is from and to whom it goes (RFC 5321 section 2.3.1).
public struct Envelope: Sendable, Hashable {
    /// The reverse-path as `local@domain`, or an empty string for the null sender.
    public var sender: String
    public var recipients: [Recipient]
    public var deliveryStatus: DeliveryStatusRequest?

    public init(sender: String, recipients: [Recipient], deliveryStatus: DeliveryStatusRequest? = nil) {
        self.sender = sender
        self.recipients = recipients
        self.deliveryStatus = deliveryStatus
    }

    public init(sender: String, recipients: [String]) {
        self.init(sender: sender, recipients: recipients.map { Recipient($0) })
    }
}
