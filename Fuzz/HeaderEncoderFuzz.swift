// libFuzzer target for the header encoders of MailMessage: RFC 2047 encoded words in unstructured text
// and display names, and RFC 2231 parameter values. Built by Fuzz/run.sh together with
// Sources/MailMessage.
//
// The input, decoded as UTF-8 with invalid sequences replaced by U+FFFD, is the value. Checked
// properties for each encoder:
// - A value with CR, LF or NUL throws lineBreakOrNUL. Any other value gives a field.
// - The field is one header field for HeaderSection(parsing:), with the same name. No line of it is
//   longer than 998 octets or contains only white space.
// - Subject: the parsed value, with encoded words decoded, is the input text.
// - Content-Disposition filename: the parsed parameter is the input text.
// - From display name: the field parses as exactly one mailbox with the address that was given.

func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fatalError(message())
    }
}

/// Parses a field written by an encoder and returns it, checking that it is one field with no line over
/// 998 octets.
func parseBack(_ field: OutgoingHeaderField, text: String) -> HeaderField {
    let lines = field.bytes.split(separator: 10, omittingEmptySubsequences: false).dropLast()
    for line in lines {
        require(line.count - 1 <= OutgoingHeaderField.maximumLineLength, "\(field.name): a line of \(line.count - 1) octets for \(text.debugDescription)")
        require(line.last == 13, "\(field.name): a line that does not end with CR LF for \(text.debugDescription)")
        require(line.dropLast().contains { $0 != 32 && $0 != 9 }, "\(field.name): a line of only white space for \(text.debugDescription)")
    }
    let section: HeaderSection
    do {
        section = try HeaderSection(parsing: field.bytes + [13, 10])
    } catch {
        fatalError("\(field.name): the encoded field does not parse (\(error)) for \(text.debugDescription)")
    }
    require(section.fields.count == 1, "\(field.name): \(section.fields.count) fields for \(text.debugDescription): \(field.line.debugDescription)")
    require(section.bodyOffset == field.bytes.count + 2, "\(field.name): the header section ends at \(section.bodyOffset), not after the field")
    let parsed = section.fields[0]
    require(parsed.name == field.name, "\(field.name): parsed back as \(parsed.name)")
    return parsed
}

func checkLineBreakError(_ name: String, text: String, _ encode: () throws(HeaderValueError) -> OutgoingHeaderField) -> OutgoingHeaderField? {
    let hasLineBreak = text.utf8.contains { $0 == 13 || $0 == 10 || $0 == 0 }
    do {
        let field = try encode()
        require(!hasLineBreak, "\(name): a value with CR, LF or NUL was accepted: \(text.debugDescription)")
        return field
    } catch {
        require(hasLineBreak, "\(name): \(error) for \(text.debugDescription)")
        require(error.reason == .lineBreakOrNUL, "\(name): \(error) for \(text.debugDescription)")
        return nil
    }
}

func checkSubject(_ text: String) {
    guard let field = checkLineBreakError("Subject", text: text, { () throws(HeaderValueError) in try .text("Subject", text) }) else { return }
    let parsed = parseBack(field, text: text)
    let decoded = EncodedWord.decode(String(decoding: parsed.unfoldedValue, as: UTF8.self))
    if decoded == text { return }
    // NOTE: text that is written as it is loses its leading and trailing blanks, because the parser removes
    // the white space around a field value. Encoded words keep them, so only plain fields are excused.
    let isPlain = !field.line.contains("=?UTF-8?")
    let trimmed = String(decoding: Array(text.utf8).trimmingBlanks(), as: UTF8.self)
    require(isPlain && decoded == trimmed, "Subject: \(text.debugDescription) came back as \(decoded.debugDescription) from \(field.line.debugDescription)")
}

func checkFileName(_ text: String) {
    let encode = { () throws(HeaderValueError) -> OutgoingHeaderField in
        try .parameterized("Content-Disposition", "attachment", parameters: [("filename", text)])
    }
    guard let field = checkLineBreakError("Content-Disposition", text: text, encode) else { return }
    let parsed = parseBack(field, text: text)
    let value = ParameterizedValue(parsing: parsed.unfoldedValue)
    require(value.value == "attachment", "Content-Disposition: value \(value.value.debugDescription) from \(field.line.debugDescription)")
    let fileName = value.parameter("filename")
    require(fileName == text, "filename \(text.debugDescription) came back as \(fileName.debugDescription) from \(field.line.debugDescription)")
}

func checkDisplayName(_ text: String) {
    // addresses(_:_:) checks only the field name, so the display name is checked here as the builder does.
    guard !text.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) else { return }
    let address = MailAddress(localPart: "user", domain: "example.test", displayName: text)
    let field: OutgoingHeaderField
    do {
        field = try .addresses("From", [address])
    } catch {
        require(error.reason == .lineTooLong, "From: \(error) for \(text.debugDescription)")
        return
    }
    let parsed = parseBack(field, text: text)
    let list: AddressList
    do {
        list = try AddressList(parsing: parsed.unfoldedValue)
    } catch {
        fatalError("From: \(field.line.debugDescription) does not parse as an address list: \(error)")
    }
    let addresses = list.entries.flatMap(\.addresses)
    require(addresses.count == 1, "From: \(addresses.count) addresses in \(field.line.debugDescription)")
    require(addresses.first?.addrSpec == "user@example.test", "From: address \(addresses.first?.addrSpec ?? "none") in \(field.line.debugDescription)")
}

extension Array where Element == UInt8 {
    func trimmingBlanks() -> ArraySlice<UInt8> {
        let start = firstIndex { $0 != 32 && $0 != 9 } ?? endIndex
        let end = lastIndex { $0 != 32 && $0 != 9 }.map { $0 + 1 } ?? start
        return self[start..<end]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHeaderEncoders(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    checkSubject(text)
    checkFileName(text)
    checkDisplayName(text)
    return 0
}
