// libFuzzer target for ReplyParser. Built by Fuzz/run.sh together with Sources/SMTPCore.
//
// Checked properties:
// - Feeding the input whole and feeding it in two pieces, split at a position taken from the first
//   byte, returns the same replies and then the same error (or none).
// - Every reply code is 200...599, and a reply has at most `maxLinesPerReply` lines.
// - No line of text is longer than the line limit allows, and no text contains a control character
//   other than TAB.
// Each input runs twice: with the default limits and with small limits that short inputs can reach.

/// Stops with `message` when `condition` is false. Unlike `precondition`, the message is also printed in
/// optimized builds, so the fuzzer log names the property that failed.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fatalError(message())
    }
}

/// The replies taken from a parser, then the error that stopped it, if any.
struct ParseOutcome: Equatable {
    var replies: [SMTPReply] = []
    var error: ReplyParser.Error?
}

/// Takes every complete reply from `parser` into `outcome`, stopping at the first error.
func drainReplies(_ parser: inout ReplyParser, into outcome: inout ParseOutcome) {
    while outcome.error == nil {
        do {
            guard let reply = try parser.nextReply() else { return }
            outcome.replies.append(reply)
        } catch {
            outcome.error = error
        }
    }
}

func parseReplies(_ pieces: [ArraySlice<UInt8>], limits: ReplyParser.Limits) -> ParseOutcome {
    var parser = ReplyParser(limits: limits)
    var outcome = ParseOutcome()
    for piece in pieces where outcome.error == nil {
        parser.append(piece)
        drainReplies(&parser, into: &outcome)
    }
    return outcome
}

func isControl(_ scalar: Unicode.Scalar) -> Bool {
    scalar != "\t" && (scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value))
}

func checkReplies(_ outcome: ParseOutcome, limits: ReplyParser.Limits) {
    for reply in outcome.replies {
        require((200...599).contains(reply.code), "reply code \(reply.code) outside 200...599")
        require(
            reply.lines.count <= limits.maxLinesPerReply,
            "reply of \(reply.lines.count) lines, limit \(limits.maxLinesPerReply)"
        )
        for line in reply.lines {
            // A line is the code, a separator and the text, so the text has at most maxLineLength - 4
            // octets. Decoding turns each octet into at most one scalar, so more scalars prove a longer line.
            require(
                line.unicodeScalars.count <= max(0, limits.maxLineLength - 4),
                "reply text of \(line.unicodeScalars.count) scalars, line limit \(limits.maxLineLength)"
            )
            require(!line.unicodeScalars.contains(where: isControl), "control character in reply text")
        }
    }
}

func checkSplitInvariance(_ bytes: [UInt8], limits: ReplyParser.Limits) {
    let whole = parseReplies([bytes[...]], limits: limits)
    let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    let pieces = parseReplies([bytes[..<split], bytes[split...]], limits: limits)
    require(whole == pieces, "split at \(split) changed the result: \(whole) versus \(pieces)")
    checkReplies(whole, limits: limits)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReplyParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    checkSplitInvariance(bytes, limits: ReplyParser.Limits())
    checkSplitInvariance(bytes, limits: ReplyParser.Limits(maxLineLength: 40, maxLinesPerReply: 4))
    return 0
}
