/// The address rules of RFC 5322 sections 3.4 and 4.4: lists, mailboxes, groups, local parts and domains.
extension AddressParser {
    // MARK: - Entry points

    // address-list = (address *("," address)) / obs-addr-list
    /// Parses `input` as an address list that contains at least one address or group.
    static func parseAddressList(_ input: some Collection<UInt8>) throws(AddressParseError) -> [AddressList.Entry] {
        var parser = try AddressParser(input)
        let entries = try parser.readList(terminator: nil) { parser throws(AddressParseError) in
            try parser.readAddress()
        }
        guard !entries.isEmpty else {
            throw parser.unexpected("an address")
        }
        return entries
    }

    // mailbox-list = (mailbox *("," mailbox)) / obs-mbox-list
    /// Parses `input` as a mailbox list, which contains at least one mailbox and no groups.
    static func parseMailboxList(_ input: some Collection<UInt8>) throws(AddressParseError) -> [MailAddress] {
        var parser = try AddressParser(input)
        let addresses = try parser.readList(terminator: nil) { parser throws(AddressParseError) in
            try parser.readMailbox(groupAllowed: false)
        }
        guard !addresses.isEmpty else {
            throw parser.unexpected("an address")
        }
        return addresses
    }

    // mailbox = name-addr / addr-spec
    /// Parses `input` as exactly one mailbox, with optional CFWS around it.
    static func parseMailbox(_ input: some Collection<UInt8>) throws(AddressParseError) -> MailAddress {
        var parser = try AddressParser(input)
        let address = try parser.readMailbox(groupAllowed: false)
        guard parser.isAtEnd else {
            throw parser.unexpected("end of input after the address")
        }
        return address
    }

    // MARK: - Lists

    // obs-addr-list = *([CFWS] ",") address *("," [address / CFWS])
    // obs-mbox-list = *([CFWS] ",") mailbox *("," [mailbox / CFWS])
    // obs-group-list = 1*([CFWS] ",") [CFWS]
    /// Reads elements separated by commas until `terminator` or the end of the input, and leaves `position`
    /// there. As the obsolete rules allow, empty elements between commas are skipped and the list may be
    /// empty, so callers that need an element check the count.
    mutating func readList<Element>(
        terminator: UInt8?,
        readElement: (inout AddressParser) throws(AddressParseError) -> Element
    ) throws(AddressParseError) -> [Element] {
        var elements: [Element] = []
        var expectingElement = true
        while true {
            _ = try skipCommentsAndWhiteSpace()
            guard let byte = peek(), byte != terminator else {
                break
            }
            if byte == MailCharacters.comma {
                position += 1
                expectingElement = true
                continue
            }
            guard expectingElement else {
                let end = terminator.map { Self.quotedForMessage(String(UnicodeScalar($0))) } ?? "end of input"
                throw unexpected("\",\" or \(end)")
            }
            elements.append(try readElement(&self))
            expectingElement = false
        }
        return elements
    }

    // MARK: - Addresses

    // address = mailbox / group
    // group = display-name ":" [group-list] ";" [CFWS]
    // group-list = mailbox-list / CFWS / obs-group-list
    /// Reads a mailbox or a group. Groups do not nest, so the members of a group are mailboxes.
    mutating func readAddress() throws(AddressParseError) -> AddressList.Entry {
        let words = try readWords()
        guard peek() == MailCharacters.colon, !words.isEmpty else {
            return .mailbox(try readMailbox(after: words, groupAllowed: true))
        }
        let name = try makeDisplayName(from: words) ?? ""
        let start = position
        position += 1
        let members = try readList(terminator: MailCharacters.semicolon) { parser throws(AddressParseError) in
            try parser.readMailbox(groupAllowed: false)
        }
        guard peek() == MailCharacters.semicolon else {
            throw unexpected("\";\" to end the group that starts at character \(characterOffset(of: start))")
        }
        position += 1
        _ = try skipCommentsAndWhiteSpace()
        return .group(AddressGroup(displayName: name, members: members))
    }

    /// Reads a mailbox. `groupAllowed` only selects the error message when the input has a group here.
    mutating func readMailbox(groupAllowed: Bool) throws(AddressParseError) -> MailAddress {
        let words = try readWords()
        return try readMailbox(after: words, groupAllowed: groupAllowed)
    }

    // mailbox = name-addr / addr-spec
    // name-addr = [display-name] angle-addr
    // addr-spec = local-part "@" domain
    /// Reads the rest of a mailbox whose leading words `readWords()` has read.
    private mutating func readMailbox(after words: [Word], groupAllowed: Bool) throws(AddressParseError)
        -> MailAddress
    {
        switch peek() {
        case MailCharacters.lessThan:
            let displayName = words.isEmpty ? nil : try makeDisplayName(from: words)
            let (localPart, domain) = try readAngleAddress()
            return MailAddress(localPart: localPart, domain: domain, displayName: displayName)
        case MailCharacters.at:
            let localPart = try makeLocalPart(from: words)
            position += 1
            let domain = try readDomain()
            return MailAddress(localPart: localPart, domain: domain, displayName: nil)
        case MailCharacters.colon where !words.isEmpty && !groupAllowed:
            throw unexpected("\"@\" or \"<\" (a group is not allowed here)")
        case _ where words.isEmpty:
            throw unexpected("an address")
        default:
            throw unexpected(groupAllowed ? "\"@\", \"<\" or \":\"" : "\"@\" or \"<\"")
        }
    }

    // angle-addr = [CFWS] "<" addr-spec ">" [CFWS] / obs-angle-addr
    // obs-angle-addr = [CFWS] "<" obs-route addr-spec ">" [CFWS]
    /// Reads the angle address at `position` and returns its local part and domain. A source route is read
    /// and dropped, because the model keeps only the final address.
    private mutating func readAngleAddress() throws(AddressParseError) -> (localPart: String, domain: String) {
        position += 1
        try skipObsoleteRoute()
        let words = try readWords()
        guard peek() == MailCharacters.at else {
            throw unexpected(words.isEmpty ? "an address after \"<\"" : "\"@\"")
        }
        let localPart = try makeLocalPart(from: words)
        position += 1
        let domain = try readDomain()
        guard peek() == MailCharacters.greaterThan else {
            throw unexpected("\">\"")
        }
        position += 1
        _ = try skipCommentsAndWhiteSpace()
        return (localPart, domain)
    }

    // obs-route = obs-domain-list ":"
    // obs-domain-list = *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain])
    /// Skips a source route such as `@a.example,@b.example:` if one starts at `position`.
    private mutating func skipObsoleteRoute() throws(AddressParseError) {
        let start = position
        var sawComma = false
        while true {
            if try skipCommentsAndWhiteSpace() {
                continue
            }
            guard peek() == MailCharacters.comma else {
                break
            }
            position += 1
            sawComma = true
        }
        guard peek() == MailCharacters.at else {
            if sawComma {
                throw unexpected("\"@\" and the domain of a route")
            }
            position = start
            return
        }
        position += 1
        _ = try readDomain()
        while peek() == MailCharacters.comma {
            position += 1
            _ = try skipCommentsAndWhiteSpace()
            if peek() == MailCharacters.at {
                position += 1
                _ = try readDomain()
            }
        }
        guard peek() == MailCharacters.colon else {
            throw unexpected("\":\" to end the route")
        }
        position += 1
    }

    // MARK: - Parts

    // display-name = phrase
    // phrase = 1*word / obs-phrase
    // obs-phrase = word *(word / "." / CFWS)
    /// Returns the display name that `words` spell, or nil when it is empty. Comments are dropped, and words
    /// that CFWS separates are joined with one space, as RFC 5322 section 3.2.2 reads such a run.
    private func makeDisplayName(from words: [Word]) throws(AddressParseError) -> String? {
        if let first = words.first, first.kind == .dot {
            throw unexpected("a display name", at: first.offset)
        }
        var name = ""
        for (index, word) in words.enumerated() {
            if index > 0 && word.followsWhiteSpace {
                name += " "
            }
            name += word.text
        }
        return name.isEmpty ? nil : name
    }

    // local-part = dot-atom / quoted-string / obs-local-part
    // obs-local-part = word *("." word)
    /// Returns the local part that `words` spell in its RFC 5321 form: the content as a dot-string when it
    /// is one, else as a quoted string with a backslash before each `"` and `\`.
    /// `position` must be at the "@" after the words.
    private func makeLocalPart(from words: [Word]) throws(AddressParseError) -> String {
        guard !words.isEmpty else {
            throw unexpected("a local part before \"@\"")
        }
        var content = ""
        for (index, word) in words.enumerated() {
            let expectsDot = !index.isMultiple(of: 2)
            if expectsDot && word.kind != .dot {
                throw unexpected("\".\" or \"@\"", at: word.offset)
            }
            if !expectsDot && word.kind == .dot {
                throw unexpected(index == 0 ? "a local part" : "a word after \".\"", at: word.offset)
            }
            content += word.text
        }
        guard words.count % 2 == 1 else {
            throw unexpected("a word after \".\"")
        }
        guard !content.isEmpty else {
            throw error(.emptyLocalPart, at: words[0].offset)
        }
        return MailCharacters.isDotAtom(content) ? content : MailCharacters.quoted(content)
    }

    // domain = dot-atom / domain-literal / obs-domain
    // obs-domain = atom *("." atom)
    /// Reads a domain with the CFWS around it and returns it without comments or white space.
    mutating func readDomain() throws(AddressParseError) -> String {
        _ = try skipCommentsAndWhiteSpace()
        if peek() == MailCharacters.openBracket {
            let literal = try readDomainLiteral()
            _ = try skipCommentsAndWhiteSpace()
            return literal
        }
        guard let first = readAtomText() else {
            throw unexpected("a domain")
        }
        var domain = first
        while true {
            _ = try skipCommentsAndWhiteSpace()
            guard peek() == MailCharacters.dot else {
                break
            }
            position += 1
            _ = try skipCommentsAndWhiteSpace()
            guard let label = readAtomText() else {
                throw unexpected("a domain label after \".\"")
            }
            domain += "." + label
        }
        return domain
    }
}
