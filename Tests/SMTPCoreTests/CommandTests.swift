import Testing
@testable import SMTPCore

struct CommandTests {
    @Test func mailWithParameters() throws {
        let command = SMTPCommand.mail(from: "a@example.test", parameters: [.init("SIZE", "42"), .init("SMTPUTF8")])
        #expect(String(decoding: try command.encoded(), as: UTF8.self) == "MAIL FROM:<a@example.test> SIZE=42 SMTPUTF8\r\n")
    }

    @Test func nullSender() throws {
        let command = SMTPCommand.mail(from: "", parameters: [])
        #expect(String(decoding: try command.encoded(), as: UTF8.self) == "MAIL FROM:<>\r\n")
    }

    @Test func quotedLocalPartWithSpace() throws {
        let command = SMTPCommand.rcpt(to: "\"john q\"@example.test", parameters: [])
        #expect(String(decoding: try command.encoded(), as: UTF8.self) == "RCPT TO:<\"john q\"@example.test>\r\n")
    }

    static let injections = ["\r", "\n", "\r\n", "\0", "x\r\nRCPT TO:<evil@example.test>"]

    @Test("line breaks rejected in EHLO domain", arguments: injections)
    func ehloInjection(injection: String) {
        #expect(throws: CommandEncodingError.self) {
            _ = try SMTPCommand.ehlo(domain: "client.example" + injection).encoded()
        }
    }

    @Test("line breaks rejected in sender", arguments: injections)
    func senderInjection(injection: String) {
        #expect(throws: CommandEncodingError.self) {
            _ = try SMTPCommand.mail(from: "a@example.test" + injection, parameters: []).encoded()
        }
    }

    @Test("line breaks rejected in recipient", arguments: injections)
    func recipientInjection(injection: String) {
        #expect(throws: CommandEncodingError.self) {
            _ = try SMTPCommand.rcpt(to: "a@example.test" + injection, parameters: []).encoded()
        }
    }

    @Test("line breaks rejected in parameter value", arguments: injections)
    func parameterValueInjection(injection: String) {
        #expect(throws: CommandEncodingError.self) {
            _ = try SMTPCommand.mail(from: "a@example.test", parameters: [.init("ENVID", "id" + injection)]).encoded()
        }
    }

    @Test("line breaks rejected in parameter keyword", arguments: injections)
    func parameterKeywordInjection(injection: String) {
        #expect(throws: CommandEncodingError.self) {
            _ = try SMTPCommand.mail(from: "a@example.test", parameters: [.init("X" + injection)]).encoded()
        }
    }

    @Test("invalid paths rejected", arguments: [
        "a b@example.test", "a@example.test> SIZE=1", "<a@example.test", "\"open@example.test",
    ])
    func invalidPathRejected(path: String) {
        #expect(throws: CommandEncodingError.self) {
            _ = try SMTPCommand.rcpt(to: path, parameters: []).encoded()
        }
    }

    @Test func emptyRecipientRejected() {
        #expect(throws: CommandEncodingError.self) {
            _ = try SMTPCommand.rcpt(to: "", parameters: []).encoded()
        }
    }

    @Test("invalid parameters rejected", arguments: [
        ESMTPParameter("-X"), ESMTPParameter("A B"), ESMTPParameter("X", "a=b"), ESMTPParameter("X", "a b"),
        ESMTPParameter("X", ""), ESMTPParameter(""),
    ])
    func invalidParameterRejected(parameter: ESMTPParameter) {
        #expect(throws: CommandEncodingError.self) {
            _ = try SMTPCommand.mail(from: "a@example.test", parameters: [parameter]).encoded()
        }
    }

    @Test func errorMessageShowsEscapedValue() {
        do {
            _ = try SMTPCommand.ehlo(domain: "a\r\nb").encoded()
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("a\\r\\nb"))
        }
    }

    @Test func xtextEncodesSpecials() {
        #expect(XText.encode("a+b=c d") == "a+2Bb+3Dc+20d")
        #expect(XText.encode("é") == "+C3+A9")
        #expect(XText.encodeUTF8Address("é+x@example") == "é\\x{2B}x@example")
    }
}
