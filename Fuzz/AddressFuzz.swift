// libFuzzer target for the address parser. Built by Fuzz/run.sh together with Sources/MailMessage.
//
// The input is read by MailAddress(parsing:), AddressList(parsing:) and
// AddressList(parsingMailboxList:). Checked properties:
// - Each either throws or returns addresses whose addrSpec contains no CR, LF or NUL.
// - When MailAddress(parsing:) returns an address, the input is a list of exactly that one mailbox
//   for both list parsers.
// - Parsing a returned address's addrSpec returns the same local part and domain and no display name,
//   and parsing its description returns an equal address.
// - A thrown error points into the input: 0 <= byteOffset <= the input length.

/// Stops with `message` when `condition` is false. Unlike `precondition`, the message is also printed in
/// optimized builds, so the fuzzer log names the property that failed.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fatalError(message())
    }
}

func checkError(_ error: AddressParseError, inputLength: Int) {
    require(error.byteOffset >= 0 && error.byteOffset <= inputLength, "error byteOffset \(error.byteOffset) outside the input of \(inputLength) bytes")
    require(error.offset >= 0, "error offset \(error.offset)")
}

func checkAddress(_ address: MailAddress) {
    let forbidden: [UInt8] = [0x0D, 0x0A, 0x00]
    require(!address.addrSpec.utf8.contains(where: forbidden.contains), "CR, LF or NUL in addrSpec \(address.addrSpec.debugDescription)")
    require(!address.localPart.isEmpty && !address.domain.isEmpty, "empty part in \(address.addrSpec.debugDescription)")

    let reparsed: MailAddress
    do {
        reparsed = try MailAddress(parsing: address.addrSpec)
    } catch {
        fatalError("addrSpec \(address.addrSpec.debugDescription) does not parse: \(error)")
    }
    require(reparsed.localPart == address.localPart, "local part \(reparsed.localPart.debugDescription) after re-parsing \(address.localPart.debugDescription)")
    require(reparsed.domain == address.domain, "domain \(reparsed.domain.debugDescription) after re-parsing \(address.domain.debugDescription)")
    require(reparsed.displayName == nil, "display name from a bare addrSpec")

    do {
        let fromDescription = try MailAddress(parsing: address.description)
        require(fromDescription == address, "description \(address.description.debugDescription) parses as \(fromDescription)")
    } catch {
        fatalError("description \(address.description.debugDescription) does not parse: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAddress(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    var single: MailAddress?
    do {
        single = try MailAddress(parsing: bytes)
    } catch {
        checkError(error, inputLength: size)
    }

    var list: AddressList?
    do {
        list = try AddressList(parsing: bytes)
    } catch {
        checkError(error, inputLength: size)
    }

    var mailboxList: AddressList?
    do {
        mailboxList = try AddressList(parsingMailboxList: bytes)
    } catch {
        checkError(error, inputLength: size)
    }

    if let single {
        checkAddress(single)
        require(list?.entries == [.mailbox(single)], "MailAddress parsed \(single), AddressList parsed \(String(describing: list))")
        require(mailboxList?.entries == [.mailbox(single)], "MailAddress parsed \(single), mailbox list parsed \(String(describing: mailboxList))")
    }
    for address in (list?.addresses ?? []) + (mailboxList?.addresses ?? []) {
        checkAddress(address)
    }
    return 0
}
