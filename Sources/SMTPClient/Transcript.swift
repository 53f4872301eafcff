import Foundation

/// One line of the protocol conversation, for `--debug` output and logs.
public struct TranscriptLine: Sendable, Hashable, CustomStringConvertible {
    public enum Direction: String, Sendable, Hashable {
        /// Sent by the client.
        case client = "C"
        /// Received from the server.
        case server = "S"
        /// A note from the client about the connection, such as the address it connected to.
        case note = "*"
    }

    public let direction: Direction
    public let text: String

    public init(_ direction: Direction, _ text: String) {
        self.direction = direction
        self.text = text
    }

    public var description: String { "\(direction.rawValue): \(text)" }
}

/// Receives transcript lines. It is called on the connection's own thread, so it must not block long.
public typealias TranscriptHandler = @Sendable (TranscriptLine) -> Void

/// Returns whether a scalar is a C0 or C1 control character or DEL, which could move a terminal's cursor.
private func isControl(_ scalar: Unicode.Scalar) -> Bool {
    scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
}

/// Splits bytes into transcript lines, keeping a partial line until its end arrives.
struct TranscriptWriter {
    let handler: TranscriptHandler?
    private var partialServerLine: [UInt8] = []

    init(handler: TranscriptHandler?) {
        self.handler = handler
    }

    var isEnabled: Bool { handler != nil }

    func note(_ text: String) {
        handler?(TranscriptLine(.note, text))
    }

    func client(_ bytes: [UInt8]) {
        guard let handler else { return }
        for line in Self.lines(in: bytes[...]) {
            handler(TranscriptLine(.client, line))
        }
    }

    /// Notes a client line that carries a secret, as the text to show in its place.
    func clientRedacted(_ shown: String) {
        handler?(TranscriptLine(.client, shown))
    }

    /// Notes server lines, with any string in `secrets` (what the client sent during AUTH) redacted,
    /// in case the server echoes it.
    mutating func server(_ bytes: some Collection<UInt8>, redacting secrets: [String] = []) {
        guard let handler else { return }
        partialServerLine.append(contentsOf: bytes)
        guard let lastNewline = partialServerLine.lastIndex(of: UInt8(ascii: "\n")) else { return }
        for line in Self.lines(in: partialServerLine[...lastNewline]) {
            let shown = secrets.reduce(line) { $0.replacingOccurrences(of: $1, with: "<redacted>") }
            handler(TranscriptLine(.server, shown))
        }
        partialServerLine.removeSubrange(...lastNewline)
    }

    private static func lines(in bytes: ArraySlice<UInt8>) -> [String] {
        bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .dropLast(bytes.last == UInt8(ascii: "\n") ? 1 : 0)
            .map { line in
                var line = line
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                return String(decoding: line, as: UTF8.self).unicodeScalars
                    .map { isControl($0) ? $0.escaped(asASCII: true) : String($0) }
                    .joined()
            }
    }
}
