import Testing
@testable import OutboxCLI

struct ArgumentParserTests {
    private let parser = ArgumentParser(command: "send", options: [
        .init(names: ["-t"], takesValue: false),
        .init(names: ["-i", "-oi"], takesValue: false),
        .init(names: ["-f"], takesValue: true),
        .init(names: ["--host"], takesValue: true),
    ])

    @Test func attachedShortValue() throws {
        let result = try parser.parse(["-fa@example.test", "b@example.test"])
        #expect(result.value("-f") == "a@example.test")
        #expect(result.positionals == ["b@example.test"])
    }

    @Test func separateShortValue() throws {
        let result = try parser.parse(["-f", "a@example.test", "-t"])
        #expect(result.value("-f") == "a@example.test")
        #expect(result.flag("-t"))
    }

    @Test func sendmailOiAlias() throws {
        let result = try parser.parse(["-oi"])
        #expect(result.flag("-i"))
    }

    @Test func longOptionWithEquals() throws {
        let result = try parser.parse(["--host=mail.example.test"])
        #expect(result.value("--host") == "mail.example.test")
    }

    @Test func doubleDashEndsOptions() throws {
        let result = try parser.parse(["--", "-t"])
        #expect(!result.flag("-t"))
        #expect(result.positionals == ["-t"])
    }

    @Test("invalid command lines", arguments: [["--bogus"], ["-x"], ["--host"], ["-t=1"]])
    func invalidCommandLine(arguments: [String]) {
        #expect(throws: UsageError.self) {
            _ = try parser.parse(arguments)
        }
    }
}
