import Foundation
import MailMessage
import SMTPClient
import SMTPCore

/// The message as it will be sent, and its envelope, worked out from the input and the options of
/// `outbox send`.
struct PreparedMessage {
    let message: OutgoingMessage
    let envelope: Envelope
    /// The Message-ID and Subject fields, unfolded, for the message store's listing.
    let messageID: String?
    let subject: String?

    /// The maximum size of the header section read to find the envelope, 1 MiB. Real header sections are a few KiB;
    /// the limit stops a hostile input from filling memory.
    static let maxHeaderSize = 1024 * 1024

    init(spool: MessageSpool, options: ArgumentParser.Result) throws {
        let (header, headerBytes) = try Self.readHeader(spool)
        try Self.rejectBareCR(in: headerBytes[..<header.bodyOffset])

        messageID = Self.text(of: "Message-ID", in: header)
        subject = Self.text(of: "Subject", in: header)
        let sender = try Self.sender(options: options, header: header)
        let recipients = try Self.recipients(options: options, header: header)
        guard !recipients.isEmpty else {
            let hint = options.flag("-t")
                ? "the To, Cc and Bcc fields name none, and no argument names one."
                : "name them as arguments, or pass -t to take them from To, Cc and Bcc."
            throw UsageError("No recipients: \(hint)", command: "send")
        }
        envelope = Envelope(sender: sender, recipients: recipients.map { Recipient($0) })

        // Bcc recipients must not see each other or be seen by the others, so the field is dropped
        // from what is sent, whether or not -t was given.
        let bccFields = header.fields.filter { $0.hasName("Bcc") || $0.hasName("Resent-Bcc") }
        let content: any MessageContent
        if bccFields.isEmpty {
            content = FileMessageContent(url: spool.url)
        } else {
            var kept: [UInt8] = []
            var position = 0
            for field in bccFields {
                kept += headerBytes[position..<field.range.lowerBound]
                position = field.range.upperBound
            }
            kept += headerBytes[position..<header.bodyOffset]
            content = ConcatenatedMessageContent([
                InMemoryMessageContent(kept), FileMessageContent(url: spool.url, offset: UInt64(header.bodyOffset)),
            ])
        }
        do {
            message = try OutgoingMessage(content: content)
        } catch let error as DataEncodingError {
            throw SendCommand.Failure(message: error.description, exitCode: .dataError)
        } catch {
            throw SendCommand.Failure(message: "Reading the message failed: \(error)", exitCode: .ioError)
        }
    }

    /// Parses the header section from the start of the spool, and returns it with the bytes read.
    private static func readHeader(_ spool: MessageSpool) throws -> (HeaderSection, [UInt8]) {
        let prefix: [UInt8]
        do {
            let handle = try FileHandle(forReadingFrom: spool.url)
            defer { try? handle.close() }
            prefix = Array(try handle.read(upToCount: maxHeaderSize + 1) ?? Data())
        } catch {
            throw SendCommand.Failure(message: "Reading the message failed: \(error)", exitCode: .ioError)
        }
        do {
            return (try HeaderSection(parsing: prefix, maximumSize: maxHeaderSize), prefix)
        } catch {
            throw SendCommand.Failure(
                message: "The message's header section is larger than \(maxHeaderSize) octets, or invalid: \(error)",
                exitCode: .dataError)
        }
    }

    /// The first field with this name, unfolded and trimmed, as text for display.
    private static func text(of name: String, in header: HeaderSection) -> String? {
        header.fields(named: name).first.map {
            String(decoding: $0.unfoldedValue, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// Rejects a CR that is not followed by LF in the header section. The header reader keeps it
    /// inside a field value, but the DATA encoder turns it into a line break, so the server would see
    /// a field (a Bcc, say) that the client never read.
    private static func rejectBareCR(in header: ArraySlice<UInt8>) throws {
        var line = 1
        var index = header.startIndex
        while index < header.endIndex {
            let byte = header[index]
            if byte == UInt8(ascii: "\n") {
                line += 1
            } else if byte == UInt8(ascii: "\r") {
                let next = header.index(after: index)
                if next == header.endIndex || header[next] != UInt8(ascii: "\n") {
                    throw SendCommand.Failure(
                        message: "Line \(line) of the header contains a CR without LF, which would split the field "
                            + "it is in. Remove the stray CR from the message.",
                        exitCode: .dataError)
                }
            }
            index = header.index(after: index)
        }
    }

    /// Returns the -f address, or else the Sender field, or else the single address in From.
    private static func sender(options: ArgumentParser.Result, header: HeaderSection) throws -> String {
        if let given = options.value("-f") {
            if given == "<>" || given.isEmpty {
                return ""
            }
            do {
                return try envelopeAddress(MailAddress(parsing: given))
            } catch let error as AddressParseError {
                throw UsageError("The sender address \"\(given)\" is invalid: \(error)", command: "send")
            }
        }
        for name in ["Sender", "From"] {
            guard let field = header.fields(named: name).first else { continue }
            let addresses: [MailAddress]
            do {
                addresses = try AddressList(parsingMailboxList: field.unfoldedValue).addresses
            } catch {
                throw SendCommand.Failure(
                    message: "The \(name) field is not a valid address list: \(error) Pass the sender with -f.",
                    exitCode: .dataError)
            }
            if let first = addresses.first, addresses.count == 1 || name == "From" {
                return try envelopeAddress(first)
            }
        }
        throw UsageError("No sender: the message has no From field. Pass the envelope sender with -f.", command: "send")
    }

    /// Returns the recipients from the arguments, and with -t from To, Cc and Bcc (or, when the message has
    /// Resent- fields, from Resent-To, Resent-Cc and Resent-Bcc, as sendmail does), without duplicates.
    private static func recipients(options: ArgumentParser.Result, header: HeaderSection) throws -> [String] {
        var result: [String] = []
        var seen = Set<String>()
        func add(_ address: MailAddress) throws {
            let path = try envelopeAddress(address)
            if seen.insert(path.lowercased()).inserted {
                result.append(path)
            }
        }

        for argument in options.positionals {
            let list: AddressList
            do {
                list = try AddressList(parsing: argument)
            } catch {
                throw UsageError("The recipient \"\(argument)\" is invalid: \(error)", command: "send")
            }
            for address in list.addresses {
                try add(address)
            }
        }
        guard options.flag("-t") else { return result }

        let resent = header.fields.contains { $0.name.lowercased().hasPrefix("resent-") }
        let names = resent ? ["Resent-To", "Resent-Cc", "Resent-Bcc"] : ["To", "Cc", "Bcc"]
        for name in names {
            for field in header.fields(named: name) {
                // RFC 5322 allows an empty Bcc field, and some programs write empty To or Cc fields.
                if field.unfoldedValue.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 }) {
                    continue
                }
                let list: AddressList
                do {
                    list = try AddressList(parsing: field.unfoldedValue)
                } catch {
                    throw SendCommand.Failure(
                        message: "The \(field.name) field is not a valid address list: \(error)", exitCode: .dataError)
                }
                for address in list.addresses {
                    try add(address)
                }
            }
        }
        return result
    }

    private static func envelopeAddress(_ address: MailAddress) throws -> String {
        do {
            try address.validateForEnvelope()
        } catch {
            throw SendCommand.Failure(message: "The address <\(address.addrSpec)> cannot be used: \(error)", exitCode: .dataError)
        }
        // An internationalized domain goes into the envelope in A-labels, which every server takes.
        // A non-ASCII local part needs SMTPUTF8 anyway, so that address is sent as UTF-8 whole.
        let isASCII = { (text: String) in text.utf8.allSatisfy { $0 < 0x80 } }
        guard !isASCII(address.domain), isASCII(address.localPart) else { return address.addrSpec }
        do {
            return try address.addrSpecWithASCIIDomain()
        } catch {
            throw SendCommand.Failure(
                message: "The domain of <\(address.addrSpec)> is not a valid internationalized domain name: \(error)",
                exitCode: .dataError)
        }
    }
}
