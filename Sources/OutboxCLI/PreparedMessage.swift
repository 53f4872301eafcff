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

    /// How the header section is changed before sending, from msmtp's `set_from_header`,
    /// `remove_bcc_headers` and `undisclosed_recipients` settings and sendmail's -F.
    struct HeaderPolicy {
        enum FromHeader: String {
            /// Add a From field when the message has none.
            case auto
            /// Replace every From field.
            case on
            case off
        }

        var fromHeader = FromHeader.off
        /// The display name for an added From field (-F).
        var fullName: String?
        var removeBcc = true
        /// Replace To, Cc and Bcc with `To: undisclosed-recipients:;`.
        var undisclosedRecipients = false
        /// Add a Date and a Message-ID field when the message lacks them, as for a message that
        /// is queued: a copy sent again after an unconfirmed attempt then has the same Message-ID.
        var addDateAndMessageID = false
    }

    /// - Parameter aliases: replaces local names in the To, Cc and Bcc fields that -t reads, for the
    ///   envelope only; the fields are sent as they are.
    init(
        spool: MessageSpool, options: ArgumentParser.Result, headerPolicy: HeaderPolicy = HeaderPolicy(),
        aliases: Aliases? = nil
    ) throws {
        let (header, headerBytes) = try Self.readHeader(spool)
        try Self.rejectBareCR(in: headerBytes[..<header.bodyOffset])

        let givenMessageID = Self.text(of: "Message-ID", in: header)
        subject = Self.text(of: "Subject", in: header)
        let sender = try Self.sender(options: options, header: header)
        let recipients = try Self.recipients(options: options, header: header, aliases: aliases)
        guard !recipients.isEmpty else {
            let hint = options.flag("-t")
                ? "the To, Cc and Bcc fields name none, and no argument names one."
                : "name them as arguments, or pass -t to take them from To, Cc and Bcc."
            throw UsageError("No recipients: \(hint)", command: "send")
        }
        let dsn = try Self.deliveryStatus(options)
        envelope = Envelope(
            sender: sender, recipients: recipients.map { Recipient($0, notify: dsn.notify) },
            deliveryStatus: dsn.request)

        // Bcc recipients must not see each other or be seen by the others, so the field is dropped
        // from what is sent, whether or not -t was given, unless `remove_bcc_headers off` keeps it.
        let policy = headerPolicy
        let hasFrom = !header.fields(named: "From").isEmpty
        let dropped = header.fields.filter { field in
            let bcc = field.hasName("Bcc") || field.hasName("Resent-Bcc")
            return (bcc && (policy.removeBcc || policy.undisclosedRecipients))
                || (policy.undisclosedRecipients && (field.hasName("To") || field.hasName("Cc")))
                || (policy.fromHeader == .on && field.hasName("From"))
        }
        var added = ""
        if !sender.isEmpty, policy.fromHeader == .on || (policy.fromHeader == .auto && !hasFrom) {
            added += "From: \(Self.mailbox(sender, name: policy.fullName))\r\n"
        }
        if policy.undisclosedRecipients {
            added += "To: undisclosed-recipients:;\r\n"
        }
        var messageID = givenMessageID
        if policy.addDateAndMessageID {
            if header.fields(named: "Date").isEmpty {
                added += "Date: \(Self.rfc5322Date(Date()))\r\n"
            }
            if givenMessageID == nil {
                let domain = sender.split(separator: "@").last.map(String.init) ?? "localhost"
                let generated = "<\(UUID().uuidString.lowercased())@\(domain)>"
                added += "Message-ID: \(generated)\r\n"
                messageID = generated
            }
        }
        self.messageID = messageID
        let content: any MessageContent
        if dropped.isEmpty, added.isEmpty {
            content = FileMessageContent(url: spool.url)
        } else {
            var kept = Array(added.utf8)
            var position = 0
            for field in dropped {
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

    /// Returns `date` in the form of RFC 5322 section 3.3, in the local time zone.
    private static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, d MMM yyyy HH:mm:ss Z"
        return formatter.string(from: date)
    }

    /// Returns the envelope sender that -f gives, or else the one in the Sender or From field, or
    /// nil; for choosing the account before the message is prepared.
    static func senderCandidate(spool: MessageSpool, options: ArgumentParser.Result) -> String? {
        guard let (header, _) = try? readHeader(spool) else { return nil }
        return try? sender(options: options, header: header)
    }

    /// Returns the NOTIFY value for every recipient (-N) and the RET and ENVID values (-R, -V).
    private static func deliveryStatus(
        _ options: ArgumentParser.Result
    ) throws -> (notify: DeliveryStatusRequest.Notify?, request: DeliveryStatusRequest?) {
        var notify: DeliveryStatusRequest.Notify?
        if let text = options.value("-N") {
            guard let parsed = DSNOptions.notify(text) else {
                throw UsageError(
                    "-N takes never or a comma-separated list of success, failure and delay, not \"\(UsageError.printable(text))\".",
                    command: "send")
            }
            notify = parsed
        }
        var request = DeliveryStatusRequest()
        if let text = options.value("-R") {
            guard let ret = DSNOptions.returnContent(text) else {
                throw UsageError("-R takes full or hdrs, not \"\(UsageError.printable(text))\".", command: "send")
            }
            request.returnContent = ret
        }
        if let text = options.value("-V") {
            guard DSNOptions.isValidEnvelopeID(text) else {
                throw UsageError(
                    "-V takes an envelope id of 1 to 100 printable ASCII characters without spaces, not \"\(UsageError.printable(text))\".",
                    command: "send")
            }
            request.envelopeID = text
        }
        let given = request.returnContent != nil || request.envelopeID != nil
        return (notify, given ? request : nil)
    }

    /// Formats `name <address>` for an added From field: the name as an atom sequence when it is
    /// plain ASCII, as a quoted string when it has specials, and as an RFC 2047 encoded word when it
    /// is not ASCII.
    static func mailbox(_ address: String, name: String?) -> String {
        guard let name, !name.isEmpty else { return address }
        let scalars = name.unicodeScalars
        if scalars.contains(where: { $0.value > 0x7E || $0.value < 0x20 }) {
            return "=?UTF-8?B?\(Data(name.utf8).base64EncodedString())?= <\(address)>"
        }
        let specials = Set("()<>[]:;@\\,.\"")
        if name.contains(where: { specials.contains($0) }) {
            let escaped = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\" <\(address)>"
        }
        return "\(name) <\(address)>"
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

    /// Returns the first field with this name, unfolded and trimmed, as text for display.
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
                throw UsageError("The sender address \"\(UsageError.printable(given))\" is invalid: \(error)", command: "send")
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
    private static func recipients(
        options: ArgumentParser.Result, header: HeaderSection, aliases: Aliases?
    ) throws -> [String] {
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
                throw UsageError("The recipient \"\(UsageError.printable(argument))\" is invalid: \(error)", command: "send")
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
                var value = field.unfoldedValue
                if let aliases {
                    value = Array(aliases.expand(fieldValue: String(decoding: value, as: UTF8.self)).utf8)
                }
                let list: AddressList
                do {
                    list = try AddressList(parsing: value)
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
