// libFuzzer target for MIMEMessage(parsing:). Built by Fuzz/run.sh together with Sources/MailMessage.
//
// Checked properties:
// - Parsing returns (it does not throw), and serializing the unmodified message gives the input back,
//   byte for byte.
// - Every child lies inside its parent's body, children are in input order and do not overlap, and no
//   entity is nested deeper than MIMEEntity.maximumDepth.
// - The entity count is at most (maximumDepth + 1) times (line count + 1). A multipart body has at most
//   one part per delimiter line. Only a message/rfc822 chain can nest entities without new lines, and
//   the depth cap ends it.
// - Decoding every leaf body and every Subject field returns without a crash.
// - reencoded() (the downgrade for a server without 8BITMIME) returns or throws a HeaderValueError, and
//   when it returns, its output parses again.

func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fatalError(message())
    }
}

/// Checks the layout of `entity` and its descendants and returns how many entities it has.
func checkEntity(_ entity: MIMEEntity, depth: Int, count: Int) -> Int {
    require(depth <= MIMEEntity.maximumDepth, "entity at depth \(depth), maximum \(MIMEEntity.maximumDepth)")
    require(entity.range.lowerBound >= 0 && entity.range.upperBound <= count, "entity range \(entity.range) in \(count) bytes")
    require(entity.bodyRange.upperBound == entity.range.upperBound, "body \(entity.bodyRange) does not end with entity \(entity.range)")
    require(entity.bodyRange.lowerBound >= entity.range.lowerBound, "body \(entity.bodyRange) starts before entity \(entity.range)")
    if !entity.children.isEmpty {
        require(depth < MIMEEntity.maximumDepth, "children at depth \(depth)")
    }
    var previousEnd = entity.bodyRange.lowerBound
    var total = 1
    for child in entity.children {
        require(child.range.lowerBound >= previousEnd, "child \(child.range) starts before \(previousEnd)")
        require(child.range.upperBound <= entity.bodyRange.upperBound, "child \(child.range) ends after body \(entity.bodyRange)")
        previousEnd = child.range.upperBound
        total += checkEntity(child, depth: depth + 1, count: count)
    }
    return total
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMIMEMessage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let message = MIMEMessage(parsing: bytes)
    let serialized = message.serialized()
    if serialized != bytes {
        let firstDifference = (0..<min(serialized.count, bytes.count)).first { serialized[$0] != bytes[$0] } ?? min(serialized.count, bytes.count)
        fatalError("serialized \(serialized.count) bytes differ from the \(size) input bytes at offset \(firstDifference)")
    }

    let entityCount = checkEntity(message.root, depth: 0, count: size)
    let lineCount = bytes.count { $0 == 10 } + 1
    require(entityCount <= (MIMEEntity.maximumDepth + 1) * (lineCount + 1), "\(entityCount) entities in \(lineCount) lines")
    require(message.root.walk().count == entityCount, "walk() gives \(message.root.walk().count) entities, the tree has \(entityCount)")

    for entity in message.root.walk() {
        if entity.children.isEmpty {
            _ = message.decodedBody(of: entity)
            _ = message.text(of: entity)
        }
        _ = message.fieldValue("Subject", in: entity)
        _ = entity.fileName
    }
    do {
        let reencoded = try message.reencoded()
        _ = MIMEMessage(parsing: reencoded)
    } catch is HeaderValueError {
    } catch {
        fatalError("reencoded() threw \(error)")
    }
    return 0
}
