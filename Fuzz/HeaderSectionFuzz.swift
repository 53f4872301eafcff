// libFuzzer target for HeaderSection(parsing:). Built by Fuzz/run.sh together with Sources/MailMessage.
//
// Checked properties:
// - The mbox line and the field ranges are in bounds, in input order and do not overlap, and
//   endOffset and bodyOffset follow them.
// - Removing one field by its range and parsing again gives the other fields with the same names and
//   raw values, and the same terminator. The first field, the last field and one field chosen by a hash
//   of the input are removed in turn. Removing every field in turn made each run quadratic in the field
//   count.
// - Parsing with a maximumSize of 256 either throws tooLarge or gives the result of the default size.

/// Stops with `message` when `condition` is false. Unlike `precondition`, the message is also printed in
/// optimized builds, so the fuzzer log names the property that failed.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fatalError(message())
    }
}

func checkLayout(_ section: HeaderSection, count: Int) {
    var previousEnd = 0
    if let mbox = section.mboxFromLine {
        require(mbox.lowerBound == 0 && mbox.upperBound <= count, "mbox line range \(mbox) in \(count) bytes")
        previousEnd = mbox.upperBound
    }
    for field in section.fields {
        require(field.range.lowerBound == previousEnd, "field range \(field.range) does not start at \(previousEnd)")
        require(field.range.upperBound <= count, "field range \(field.range) beyond \(count) bytes")
        require(!field.range.isEmpty, "empty field range at \(field.range.lowerBound)")
        require(!field.name.isEmpty, "field without a name at \(field.range)")
        previousEnd = field.range.upperBound
    }
    require(section.endOffset == previousEnd, "endOffset \(section.endOffset), last field ends at \(previousEnd)")
    require(section.endOffset <= section.bodyOffset && section.bodyOffset <= count, "bodyOffset \(section.bodyOffset), endOffset \(section.endOffset), \(count) bytes")
}

func nameAndValue(_ field: HeaderField) -> [UInt8] {
    Array(field.name.utf8) + [0] + field.rawValue
}

/// Returns the indices of the fields to remove one at a time: the first, the last and one chosen by an
/// FNV-1a hash of the input, so that a failing input reproduces with the same fields.
func removedFieldIndices(fieldCount: Int, bytes: [UInt8]) -> [Int] {
    guard fieldCount > 0 else { return [] }
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes {
        hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
    }
    let chosen = Int(hash % UInt64(fieldCount))
    return Array(Set([0, fieldCount - 1, chosen])).sorted()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHeaderSection(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let section = try? HeaderSection(parsing: bytes) else {
        return 0
    }
    checkLayout(section, count: size)

    for index in removedFieldIndices(fieldCount: section.fields.count, bytes: bytes) {
        let field = section.fields[index]
        var shortened = bytes
        shortened.removeSubrange(field.range)
        guard let reparsed = try? HeaderSection(parsing: shortened) else {
            fatalError("parsing failed after removing field \(index) at \(field.range)")
        }
        // NOTE: removing the first field can leave a line that starts with "From " and is not a field at the
        // start of the input, which then reads as an mbox line, and the fields after it count as header
        // fields. That follows from the mbox rule, so the comparison is skipped for it.
        if section.mboxFromLine == nil, reparsed.mboxFromLine != nil {
            require(index == 0, "removing field \(index) at \(field.range) made an mbox line")
            continue
        }
        var expected = section.fields.map(nameAndValue)
        expected.remove(at: index)
        require(reparsed.fields.map(nameAndValue) == expected, "removing field \(index) at \(field.range) changed the other fields")
        require(reparsed.terminator == section.terminator, "removing field \(index) changed the terminator to \(reparsed.terminator)")
        require((reparsed.mboxFromLine == nil) == (section.mboxFromLine == nil), "removing field \(index) changed the mbox line")
    }

    do {
        let small = try HeaderSection(parsing: bytes, maximumSize: 256)
        require(small == section, "maximumSize 256 gives another result than the default")
    } catch {
        require(error == .tooLarge(maximumSize: 256), "unexpected error \(error)")
    }
    return 0
}
