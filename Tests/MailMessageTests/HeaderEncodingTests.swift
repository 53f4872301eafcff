import Foundation
import MailMessage
import Testing

/// Strings that stress encoded words and folding: scripts, emoji sequences, combining marks, long words.
let hostileTexts: [String] = [
    "Grüße aus München",
    "日本語の件名がとても長い場合にはどうなるでしょうか、もっと長くしてみましょう。さらにもう少し長く。",
    String(repeating: "👨‍👩‍👧‍👦", count: 12),
    String(repeating: "e\u{301}\u{302}\u{303}", count: 30),
    String(repeating: "a", count: 60) + "é" + String(repeating: "👍🏽", count: 10),
    String(repeating: "x", count: 1200),
    "=?UTF-8?Q?not_an_encoded_word?= as text",
    "Ünïcödé, with \"quotes\", commas; and <angles> (parens) ? _ = signs",
    "Ελληνικά Русский עברית العربية हिन्दी 한국어",
    "emoji at the end 🇩🇪🇫🇷🇯🇵",
    "a" + String(repeating: "\u{301}", count: 40),
]

private func parseSingleField(_ field: OutgoingHeaderField) throws -> HeaderField {
    let message = field.bytes + [13, 10]
    let section = try HeaderSection(parsing: message)
    #expect(section.fields.count == 1)
    #expect(section.terminator == .emptyLine)
    return try #require(section.fields.first)
}

private func checkLineLengths(_ field: OutgoingHeaderField, maximum: Int = OutgoingHeaderField.maximumLineLength) {
    for line in field.line.components(separatedBy: "\r\n") {
        #expect(line.utf8.count <= maximum, "line of \(line.utf8.count): \(line.prefix(40))")
        #expect(!line.trimmingCharacters(in: .whitespaces).isEmpty, "a line of only white space")
    }
}

struct EncodedWordTests {
    @Test func wordsSplitAtClusterBoundaries() {
        for text in hostileTexts {
            // UTF-8 offsets where a grapheme cluster ends. A cluster too large for one word (45 bytes in B)
            // may be split between scalars, so scalar boundaries count for such a text.
            var boundaries: Set<Int> = [0]
            var offset = 0
            let hasHugeCluster = text.contains { String($0).utf8.count > 45 }
            for character in text {
                if hasHugeCluster {
                    for scalar in character.unicodeScalars {
                        offset += String(scalar).utf8.count
                        boundaries.insert(offset)
                    }
                } else {
                    offset += String(character).utf8.count
                    boundaries.insert(offset)
                }
            }
            let words = EncodedWord.encode(text)
            var wordEnd = 0
            var decodedBytes: [UInt8] = []
            for word in words {
                #expect(word.utf8.count <= 75, "\(word)")
                let decoded = EncodedWord.decode(word)
                #expect(!decoded.contains("\u{FFFD}"), "word splits a UTF-8 sequence: \(word)")
                wordEnd += decoded.utf8.count
                decodedBytes += decoded.utf8
                #expect(boundaries.contains(wordEnd), "word ends inside a grapheme cluster: \(word)")
            }
            #expect(decodedBytes == Array(text.utf8))
            #expect(EncodedWord.decode(words.joined(separator: "\r\n ")) == text)
        }
    }

    @Test func rfc2047Examples() {
        #expect(EncodedWord.decode("=?ISO-8859-1?Q?a?=") == "a")
        #expect(EncodedWord.decode("=?ISO-8859-1?Q?a?= b") == "a b")
        #expect(EncodedWord.decode("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=") == "ab")
        #expect(EncodedWord.decode("=?ISO-8859-1?Q?a?=  \r\n  =?ISO-8859-1?Q?b?=") == "ab")
        #expect(EncodedWord.decode("=?ISO-8859-1?Q?a_b?=") == "a b")
        #expect(EncodedWord.decode("=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=") == "a b")
        #expect(EncodedWord.decode("=?US-ASCII?Q?Keith_Moore?=") == "Keith Moore")
        #expect(EncodedWord.decode("=?ISO-8859-1?Q?Andr=E9?= Pirard") == "André Pirard")
        #expect(EncodedWord.decode("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=") == "If you can read this yo")
        #expect(EncodedWord.decode("=?KOI8-R?B?8NLJ18XU?=") == "Привет")
        #expect(EncodedWord.decode("=?bogus?Q?x?=") == "=?bogus?Q?x?=")
    }
}

struct OutgoingHeaderFieldTests {
    @Test func rejectsLineBreaksInEveryFactory() {
        for bad in ["a\r\nBcc: victim@example.test", "a\nb", "a\rb", "a\0b"] {
            #expect(throws: HeaderValueError.self) { try OutgoingHeaderField.text("Subject", bad) }
            #expect(throws: HeaderValueError.self) { try OutgoingHeaderField.structured("Message-ID", words: [bad]) }
            #expect(throws: HeaderValueError.self) { try OutgoingHeaderField.parameterized("Content-Type", "text/plain", parameters: [("name", bad)]) }
            #expect(throws: HeaderValueError.self) { try OutgoingHeaderField.parameterized("Content-Type", bad, parameters: []) }
            #expect(throws: HeaderValueError.self) { try OutgoingHeaderField.text(bad, "value") }
        }
        #expect(throws: HeaderValueError.self) { try OutgoingHeaderField.text("Bad Name", "value") }
        #expect(throws: HeaderValueError.self) { try OutgoingHeaderField.text("Bad:Name", "value") }
    }

    /// Found by the header-encoders fuzz target: the fold before the last word put the TAB on a line of
    /// its own.
    @Test func tabWordNotFoldedAlone() throws {
        let text = String(repeating: "x", count: 80) + " \t"
        let field = try OutgoingHeaderField.text("Subject", text)
        checkLineLengths(field)
        let parsed = try parseSingleField(field)
        let decoded = EncodedWord.decode(String(decoding: parsed.unfoldedValue, as: UTF8.self))
        #expect(decoded == text)
    }

    /// Folding breaks lines only before a word that is not the first, so long runs of spaces would make
    /// lines over 998 octets. Such text is written as encoded words.
    @Test func longSpaceRunsBecomeEncodedWords() throws {
        let texts = [
            String(repeating: " ", count: 120) + String(repeating: "x", count: 900) + " Numericx   ",
            "a" + String(repeating: " ", count: 1_000) + "b",
            // The last line has no CR LF in the field, so a check that counted it in every line let this
            // fold to a last line of 999 octets.
            "x " + String(repeating: "x", count: 998),
        ]
        for text in texts {
            let field = try OutgoingHeaderField.text("Subject", text)
            checkLineLengths(field)
            #expect(field.line.contains("=?UTF-8?"), "written as it is: \(field.line.prefix(80))")
            let parsed = try parseSingleField(field)
            let decoded = EncodedWord.decode(String(decoding: parsed.unfoldedValue, as: UTF8.self))
            #expect(decoded == text)
        }
    }

    @Test func textRoundTripsThroughParser() throws {
        for text in hostileTexts + ["plain ascii subject", "  leading and trailing  ", "tab\tinside"] {
            let field = try OutgoingHeaderField.text("Subject", text)
            checkLineLengths(field)
            #expect(field.line.utf8.allSatisfy { $0 < 0x80 }, "non-ASCII in \(field.line)")
            let parsed = try parseSingleField(field)
            #expect(parsed.name == "Subject")
            let decoded = EncodedWord.decode(String(decoding: parsed.unfoldedValue, as: UTF8.self))
            #expect(decoded == text.trimmingCharacters(in: .whitespaces))
        }
    }

    @Test func foldsNearSeventyEightColumns() throws {
        let text = (0..<60).map { "word\($0)" }.joined(separator: " ")
        let field = try OutgoingHeaderField.text("Subject", text)
        checkLineLengths(field, maximum: 78)
        #expect(field.line.components(separatedBy: "\r\n").count > 5)
        let encoded = try OutgoingHeaderField.text("Subject", String(repeating: "ü", count: 200))
        checkLineLengths(encoded, maximum: 78)
    }

    @Test func longUnbreakableWordStaysUnderLimit() throws {
        let field = try OutgoingHeaderField.text("X-Long", String(repeating: "y", count: 990))
        checkLineLengths(field)
        let longer = try OutgoingHeaderField.text("X-Long", String(repeating: "y", count: 5000))
        checkLineLengths(longer)
        #expect(longer.line.contains("=?UTF-8?"))
        #expect(throws: HeaderValueError.self) {
            try OutgoingHeaderField.structured("Message-ID", words: ["<" + String(repeating: "z", count: 1000) + "@x>"])
        }
    }

    @Test func addressListKeepsCommasOutsideEncodedWords() throws {
        let entries = try AddressList(parsing: "\"Müller, Hans\" <hans@example.test>, plain@example.test, "
            + "\"日本 太郎\" <taro@example.test>, team: a@example.test, \"Ünï\" <b@example.test>;").entries
        let field = try OutgoingHeaderField.addresses("To", entries)
        checkLineLengths(field, maximum: 78)
        let parsed = try parseSingleField(field)
        let list = try AddressList(parsing: parsed.unfoldedValue)
        #expect(list.addresses.map(\.addrSpec) == ["hans@example.test", "plain@example.test", "taro@example.test", "a@example.test", "b@example.test"])
        #expect(list.addresses.map { $0.displayName.map(EncodedWord.decode) } == ["Müller, Hans", nil, "日本 太郎", nil, "Ünï"])
    }

    @Test func parametersUseRFC2231() throws {
        let names = ["report.pdf", "my report.pdf", "Grüße.txt", "日本語のファイル名がとても長い場合のテストです。日本語のファイル名.txt",
                     "файл с длинным именем для проверки продолжений.docx", String(repeating: "👩🏽‍💻", count: 8) + ".png",
                     "quote\"and\\backslash.txt"]
        for name in names {
            let field = try OutgoingHeaderField.parameterized("Content-Disposition", "attachment", parameters: [("filename", name), ("size", "10")])
            checkLineLengths(field, maximum: 78)
            #expect(!field.line.contains("=?"), "encoded word in a parameter: \(field.line)")
            #expect(field.line.utf8.allSatisfy { $0 < 0x80 })
            _ = try parseSingleField(field)
        }
    }

    /// A grapheme cluster may carry any number of combining marks. One that does not fit in a section is
    /// split between its Unicode scalars, so every line stays short and the value comes back whole.
    @Test func longClusterSplitBetweenScalars() throws {
        let name = "a" + String(repeating: "\u{301}", count: 600) + ".txt"
        #expect(name.count == 5)
        let field = try OutgoingHeaderField.parameterized("Content-Disposition", "attachment", parameters: [("filename", name)])
        checkLineLengths(field, maximum: 78)
        let parsed = try parseSingleField(field)
        let value = ParameterizedValue(parsing: parsed.unfoldedValue)
        #expect(value.value == "attachment")
        #expect(value.parameter("filename") == name)
    }
}

@Suite(.enabled(if: PythonOracle.isAvailable, "needs /usr/bin/python3"))
struct HeaderPythonOracleTests {
    /// Prints the decoded Subject, the To addresses and the filename parameter of a header section.
    /// Display names are decoded with `email.header.decode_header`, because the phrase parser of
    /// Python 3.11's default policy puts a space between adjacent encoded words, which RFC 2047
    /// section 6.2 requires decoders to drop.
    static let script = """
        import sys, email, email.policy, email.header, email.utils, json
        data = open(sys.argv[1], 'rb').read()
        message = email.message_from_bytes(data, policy=email.policy.default)
        legacy = email.message_from_bytes(data)
        decode = lambda text: str(email.header.make_header(email.header.decode_header(text)))
        to = [[decode(name), address] for name, address in email.utils.getaddresses(legacy.get_all('To'))]
        print(json.dumps({'subject': str(message['Subject']), 'to': to, 'filename': message.get_filename(), 'defects': len(message.defects)}))
        """

    @Test func pythonDecodesHeaders() throws {
        for (index, text) in hostileTexts.enumerated() {
            let filename = String(text.prefix(40)) + ".txt"
            let addressName = text.prefix(30).replacingOccurrences(of: "\"", with: "")
            var header: [UInt8] = []
            header += try OutgoingHeaderField.text("Subject", text).bytes
            let address = try MailAddress(parsing: "\"\(addressName)\" <user\(index)@example.test>")
            header += try OutgoingHeaderField.addresses("To", [address, try MailAddress(parsing: "other@example.test")]).bytes
            header += try OutgoingHeaderField.parameterized("Content-Disposition", "attachment", parameters: [("filename", filename)]).bytes
            header += Array("\r\nbody\r\n".utf8)
            let output = try PythonOracle.run(Self.script, input: header)
            let json = try JSONSerialization.jsonObject(with: Data(output)) as? [String: Any]
            #expect(json?["subject"] as? String == text, "subject \(index)")
            let to = json?["to"] as? [[String]]
            #expect(to?.first == [EncodedWord.decode(address.displayName ?? ""), "user\(index)@example.test"], "to \(index)")
            #expect(to?.last == ["", "other@example.test"])
            #expect(json?["filename"] as? String == filename, "filename \(index)")
            #expect(json?["defects"] as? Int == 0, "defects \(index)")
        }
    }
}

struct HeaderPropertyTests {
    /// Scalars for random values: ASCII letters and punctuation, white space, control characters other
    /// than CR, LF and NUL, Latin and CJK letters, combining marks, emoji with modifiers and joiners.
    static let scalars: [Unicode.Scalar] = Array("aZ09 ,;:\"'()<>=?_.-\t".unicodeScalars)
        + ["\u{1}", "\u{7F}", "é", "ß", "Ж", "日", "本", "\u{301}", "\u{302}", "👍", "\u{1F3FD}", "\u{200D}", "👩", "🇩", "🇪", "\u{FEFF}"]

    @Test func randomTextRoundTrips() throws {
        var random = SeededBytes(seed: 13)
        for round in 0..<300 {
            let length = Int(random.next()) % 120 + Int(random.next()) % 3 * 200
            var text = ""
            for _ in 0..<length {
                text.unicodeScalars.append(Self.scalars[Int(random.next()) % Self.scalars.count])
            }
            let field = try OutgoingHeaderField.text("X-Random", text)
            #expect(field.line.utf8.allSatisfy { $0 < 0x80 }, "round \(round)")
            for line in field.line.components(separatedBy: "\r\n") {
                #expect(line.utf8.count <= OutgoingHeaderField.maximumLineLength, "round \(round)")
            }
            let section = try HeaderSection(parsing: field.bytes + [13, 10])
            #expect(section.fields.count == 1, "round \(round)")
            let decoded = EncodedWord.decode(String(decoding: section.fields[0].unfoldedValue, as: UTF8.self))
            let trimmed = text.trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
            #expect(decoded == text || decoded == trimmed, "round \(round): \(text.debugDescription)")
        }
    }

    @Test func domainsBecomeALabels() throws {
        let field = try OutgoingHeaderField.addresses("To", [try MailAddress(parsing: "Jörg <joerg@bücher.example>")])
        #expect(field.line.hasSuffix(" <joerg@xn--bcher-kva.example>"))
        #expect(field.line.utf8.allSatisfy { $0 < 0x80 })
        let utf8Local = try OutgoingHeaderField.addresses("To", [try MailAddress(parsing: "jörg@bücher.example")])
        #expect(utf8Local.line == "To: jörg@bücher.example")
    }
}
