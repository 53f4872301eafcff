import Foundation
import MailStore
import OutboxTestSupport
import Testing
@testable import OutboxCLI

/// A temporary home folder with a configuration file in it, removed at the end.
final class ConfigHome {
    let path: String

    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-home-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes a file under the home folder with the given permissions and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        let file = path + "/" + name
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        chmod(file, mode_t(mode))
        return file
    }

    /// The environment of a command run in this home: HOME, XDG_CONFIG_HOME and a store inside it.
    var environment: [String: String] {
        ["HOME": path, "XDG_CONFIG_HOME": path + "/.config", "OUTBOX_STORE": path + "/store", "USER": "tester"]
    }
}

private func parse(_ text: String, home: String? = "/home/tester") throws -> ConfigFile {
    try ConfigFile.parse(text, path: "/test/msmtprc", home: home)
}

/// A file laid out as msmtp's manual lays out its examples: a defaults section, a provider
/// account, a second account that inherits from it, a local server and the default account.
private let typicalFile = """
    # Settings for every account below.
    defaults
    tls on
    tls_trust_file /etc/ssl/certs/ca-certificates.crt
    logfile ~/.msmtp.log

    # A mail provider that needs a login.
    account provider
    host mail.provider.example
    port 587
    from jane@provider.example
    user jane
    passwordeval "pass show mail/provider"
    auth on

    # The same provider, another address.
    account alias : provider
    from jane.doe@provider.example

    # A server on this machine.
    account local
    host 127.0.0.1
    port 2525
    tls off
    from *@localhost.example
    auth off

    account default : provider
    """

/// A server that offers only AUTH PLAIN, accepts the login and one message for one recipient.
private let authScript: [ScriptedServer.Step] = [
    .send("220 auth.test ESMTP\r\n"), .expectLine(prefix: "EHLO "), .send("250-auth.test\r\n250 AUTH PLAIN\r\n"),
    .expectLine(prefix: "AUTH PLAIN"), .send("235 2.7.0 Authenticated\r\n"),
    .expectLine(prefix: "MAIL FROM:"), .send("250 2.1.0 OK\r\n"), .expectLine(prefix: "RCPT TO:"),
    .send("250 2.1.5 OK\r\n"), .expectLine("DATA"), .send("354 Go ahead\r\n"), .readData,
    .send("250 2.0.0 Queued\r\n"), .expectLine("QUIT"), .send("221 2.0.0 Bye\r\n"),
]

@Suite(.timeLimit(.minutes(1)))
struct ConfigFileTests {
    @Test func typicalFileAccounts() throws {
        let file = try parse(typicalFile)
        #expect(file.accounts.map(\.name) == ["provider", "alias", "local", "default"])
        let provider = try #require(file.account(named: "provider"))
        #expect(provider.value("host") == "mail.provider.example")
        #expect(provider.value("port") == "587")
        #expect(provider.value("tls") == "on")
        #expect(provider.value("logfile") == "/home/tester/.msmtp.log")
        #expect(provider.value("passwordeval") == "pass show mail/provider")
        #expect(provider.value("auth") == "on")

        let alias = try #require(file.account(named: "alias"))
        #expect(alias.value("from") == "jane.doe@provider.example")
        #expect(alias.value("user") == "jane")
        #expect(alias.value("host") == "mail.provider.example")

        let local = try #require(file.account(named: "local"))
        #expect(local.value("tls") == "off")
        #expect(local.value("user") == nil)
        #expect(local.value("tls_trust_file") == "/etc/ssl/certs/ca-certificates.crt")

        let fallback = try #require(file.account(named: "default"))
        #expect(fallback.value("from") == "jane@provider.example")
    }

    @Test func optionDefaultsOfAccount() throws {
        let file = try parse(typicalFile)
        let settings = AccountSettings(file: file, account: file.account(named: "provider"))
        let defaults = try settings.optionDefaults(environment: [:])
        #expect(defaults["--host"] == "mail.provider.example")
        #expect(defaults["--port"] == "587")
        #expect(defaults["--tls"] == "starttls")
        #expect(defaults["--tls-trust-file"] == "/etc/ssl/certs/ca-certificates.crt")
        #expect(defaults["--user"] == "jane")
        #expect(defaults["--password-command"] == "pass show mail/provider")
        #expect(defaults["-f"] == "jane@provider.example")
        #expect(defaults["-X"] == "/home/tester/.msmtp.log")
        #expect(defaults["--auth"] == nil)
    }

    @Test func otherSettingsMapToOptions() throws {
        let file = try parse("""
            account a
            auto_from on
            maildomain mail.example.test
            dsn_notify failure,delay
            dsn_return headers
            queue only
            store ~/queue
            retry_delay 60
            parallel 2
            timeout off
            user u
            password secret
            """)
        let settings = AccountSettings(file: file, account: file.accounts.first)
        let defaults = try settings.optionDefaults(environment: ["USER": "tester"])
        #expect(defaults["-f"] == "tester@mail.example.test")
        #expect(defaults["-N"] == "failure,delay")
        #expect(defaults["-R"] == "headers")
        #expect(defaults["--queue-only"] == "")
        #expect(defaults["--store"] == "/home/tester/queue")
        #expect(defaults["--retry-delay"] == "60")
        #expect(defaults["--parallel"] == "2")
        #expect(defaults["--timeout"] == nil)

        // The command line's choice of a group replaces the file's whole group.
        let commandLine = try SendCommand.parser.parse(["--queue", "--password-env", "MAIL_PASSWORD", "x@example.test"])
        let merged = try settings.merged(into: commandLine, environment: [:])
        #expect(merged.flag("--queue"))
        #expect(!merged.flag("--queue-only"))
        #expect(settings.password(overriddenBy: commandLine) == nil)
        let plain = try SendCommand.parser.parse(["x@example.test"])
        #expect(settings.password(overriddenBy: plain) == "secret")
    }

    @Test func tlsWithoutStartTLSIsImplicit() throws {
        let file = try parse("account a\nhost h.example\ntls on\ntls_starttls off\ntls_certcheck off\n")
        let defaults = try AccountSettings(file: file, account: file.accounts.first).optionDefaults(environment: [:])
        #expect(defaults["--tls"] == "implicit")
        #expect(defaults["--tls-certcheck"] == "off")
    }

    @Test func trustSettingsFollowTLS() throws {
        let text = """
            defaults
            tls_trust_file /etc/ca.pem
            account local
            host 127.0.0.1
            account remote
            host mail.example.test
            account plain
            host mail.example.test
            tls off
            """
        let file = try parse(text)
        let expectations: [(String, String?)] = [("local", nil), ("remote", "/etc/ca.pem"), ("plain", nil)]
        for (name, trust) in expectations {
            let defaults = try AccountSettings(file: file, account: file.account(named: name)).optionDefaults(environment: [:])
            #expect(defaults["--tls-trust-file"] == trust, "account \(name)")
        }
    }

    @Test func quotingAndComments() throws {
        let file = try parse("""
            account q   # a comment after the name
            password "a # b \\"c\\" \\\\ d"
            user  plain#kept   # dropped
            from "  spaced  "
            domain client.example\r
            """)
        let account = try #require(file.accounts.first)
        #expect(account.name == "q")
        #expect(account.value("password") == "a # b \"c\" \\ d")
        #expect(account.value("user") == "plain#kept")
        #expect(account.value("from") == "  spaced  ")
        #expect(account.value("domain") == "client.example")
    }

    @Test func emptyArgumentIsOn() throws {
        let file = try parse("account a\ntls\nauth\nuser u\npassword p\nsyslog\n")
        let account = try #require(file.accounts.first)
        #expect(account.value("tls") == "on")
        #expect(account.value("auth") == "on")
        #expect(account.value("syslog") == "LOG_USER")
    }

    @Test func syslogFacilities() throws {
        let cases: [(String, Int32?)] = [("on", 1 << 3), ("LOG_MAIL", 2 << 3), ("LOG_LOCAL7", 23 << 3), ("off", nil)]
        for (value, facility) in cases {
            let file = try parse("account a\nsyslog \(value)\n")
            #expect(AccountSettings(file: file, account: file.accounts.first).syslogFacility == facility, "syslog \(value)")
        }
    }

    @Test func laterDefaultsApplyToLaterAccounts() throws {
        let file = try parse("defaults\nport 25\naccount a\ndefaults\nport 587\naccount b\n")
        #expect(file.account(named: "a")?.value("port") == "25")
        #expect(file.account(named: "b")?.value("port") == "587")
    }

    @Test func inheritanceOrderLaterWins() throws {
        let file = try parse("account a\nhost a.example\nport 1\naccount b\nport 2\naccount c : a, b\nuser c\n")
        let account = try #require(file.account(named: "c"))
        #expect(account.value("host") == "a.example")
        #expect(account.value("port") == "2")
        #expect(account.value("user") == "c")
    }

    @Test func badFilesNameLine() throws {
        let cases: [(String, Int, String)] = [
            ("account a\nhots x\n", 2, "Unknown setting 'hots'"),
            ("account a\nport 70000\n", 2, "Invalid value \"70000\" for 'port'"),
            ("account a\ntls maybe\n", 2, "expected on or off"),
            ("\n\naccount a : missing\n", 3, "\"missing\" that \"a\" inherits from is not defined"),
            ("account a\naccount a\n", 2, "defined twice"),
            ("account a\npassword \"open\n", 2, "double quote is not closed"),
            ("account a\ntls_fingerprint 00:11\n", 2, "SHA-256 fingerprint"),
            ("account a\nauth gssapi\n", 2, "Invalid value \"gssapi\" for 'auth'"),
            ("account a\ntls_crl_file x\n", 2, "not supported by outbox"),
            ("account a\nqueue sometimes\n", 2, "on, off, only or hold"),
            ("account a\ndsn_notify always\n", 2, "'dsn_notify'"),
            ("defaults extra\n", 1, "takes no argument"),
            ("account\n", 1, "needs a name"),
            ("account a\nfrom %U@%H\n", 2, "substitutions"),
        ]
        for (text, line, fragment) in cases {
            #expect {
                try parse(text)
            } throws: { error in
                let description = "\(error)"
                return description.hasPrefix("/test/msmtprc:\(line): ") && description.contains(fragment)
            }
        }
    }

    @Test func accountChosenByEnvelopeSender() throws {
        let file = try parse(typicalFile)
        let byAddress = try AccountSettings.select(file: file, name: nil, sender: "Jane.Doe@Provider.example")
        #expect(byAddress.account?.name == "alias")
        let byWildcard = try AccountSettings.select(file: file, name: nil, sender: "root@localhost.example")
        #expect(byWildcard.account?.name == "local")
        let fallback = try AccountSettings.select(file: file, name: nil, sender: "someone@elsewhere.example")
        #expect(fallback.account?.name == "default")
        let named = try AccountSettings.select(file: file, name: "local", sender: "jane@provider.example")
        #expect(named.account?.name == "local")
        #expect(throws: ConfigError.self) {
            try AccountSettings.select(file: file, name: "nope", sender: nil)
        }
    }

    // MARK: - Through the command

    @Test func unknownKeyExitsWithConfigStatus() async throws {
        let home = ConfigHome()
        let path = try home.write(".msmtprc", "account default\nhost 127.0.0.1\nbogus on\n")
        let result = try await runOutbox(["send", "x@example.test"], input: "From: a@example.test\n\nx\n", environment: home.environment)
        #expect(result.status == ExitCode.configuration.rawValue)
        #expect(result.error.contains("\(path):3: Unknown setting 'bogus'"))
    }

    @Test func userWithoutPasswordRejected() async throws {
        let home = ConfigHome()
        let path = try home.write(".msmtprc", "account default\nhost 127.0.0.1\nuser me\n")
        let result = try await runOutbox(
            ["send", "-f", "a@example.test", "x@example.test"], input: "Subject: s\n\nb\n", environment: home.environment)
        #expect(result.status == ExitCode.configuration.rawValue)
        #expect(result.error.contains("\(path):3: account \"default\" sets 'user' but neither 'password' nor 'passwordeval'"))
        // The queue commands do not log in, so the same file serves them.
        let list = try await runOutbox(["queue", "list"], environment: home.environment)
        #expect(list.status == 0, "\(list.error)")
    }

    @Test func filesSearchedInOrder() async throws {
        let home = ConfigHome()
        try home.write(".config/msmtp/config", "account default\nbad1 x\n")
        let msmtprc = try home.write(".msmtprc", "account default\nbad2 x\n")
        let first = try await runOutbox(["queue", "list"], environment: home.environment)
        #expect(first.error.contains(msmtprc))
        let own = try home.write(".config/outbox/config", "account default\nbad3 x\n")
        let second = try await runOutbox(["queue", "list"], environment: home.environment)
        #expect(second.error.contains(own))
        #expect(second.status == ExitCode.configuration.rawValue)
    }

    @Test func passwordFileReadableByOthersWarns() async throws {
        let home = ConfigHome()
        try home.write(".msmtprc", "account default\nhost 127.0.0.1\npassword secret\n", mode: 0o644)
        let result = try await runOutbox(["queue", "list"], environment: home.environment)
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("contains a password and other users can read it"))
        #expect(!result.error.contains("secret"))

        try home.write(".msmtprc", "account default\nhost 127.0.0.1\n", mode: 0o620)
        let writable = try await runOutbox(["queue", "list"], environment: home.environment)
        #expect(writable.status == 0, "\(writable.error)")
        #expect(writable.error.contains("other users can change"))
        #expect(!writable.error.contains("contains a password"))
    }

    @Test func fileAccountSendsWithPassword() async throws {
        let home = ConfigHome()
        let server = try ScriptedServer(script: authScript)
        defer { server.stop() }
        try home.write(".msmtprc", """
            defaults
            timeout 5
            domain client.example.test
            account mine
            host 127.0.0.1
            port \(server.port)
            from me@example.test
            user me
            password "pa ss"
            auth plain
            set_from_header auto
            account default : mine
            """)
        let result = try await runOutbox(
            ["send", "--debug", "bob@example.test"], input: "Subject: hi\n\nbody\n", environment: home.environment)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        // The transcript shows the AUTH command with its credentials redacted.
        #expect(result.error.contains("AUTH PLAIN"))
        #expect(!result.error.contains("pa ss"))
        #expect(!result.error.contains(Data("\0me\0pa ss".utf8).base64EncodedString()))
        let lines = try #require(server.connections.first).lines
        #expect(lines.contains { $0.hasPrefix("EHLO client.example.test") })
        #expect(lines.contains { $0 == "AUTH PLAIN " + Data("\0me\0pa ss".utf8).base64EncodedString() }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("MAIL FROM:<me@example.test>") })
        let data = String(decoding: try #require(server.connections.first?.messages.first), as: UTF8.self)
        #expect(data.hasPrefix("From: me@example.test\r\n"))
    }

    @Test func checkUsesNamedAccount() async throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        try home.write(".msmtprc", "account other\nhost 127.0.0.1\nport \(server.port)\ntimeout 5\naccount default\nhost 127.0.0.1\nport 1\n")
        let result = try await runOutbox(["check", "-a", "other"], environment: home.environment)
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("Server: 127.0.0.1 port \(server.port)"))
    }

    @Test func commandLineOverridesFile() async throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        let closed = try ScriptedServer.closedPort()
        try home.write(".msmtprc", "account default\nhost 127.0.0.1\nport \(closed)\nfrom file@example.test\ntimeout 5\n")
        let result = try await runOutbox(
            ["send", "--port", String(server.port), "-f", "cli@example.test", "bob@example.test"],
            input: "From: a@example.test\n\nbody\n", environment: home.environment)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        #expect(try #require(server.connections.first).lines.contains { $0.hasPrefix("MAIL FROM:<cli@example.test>") })
    }

    @Test func plaintextAuthStillRejectedForRemoteHost() async throws {
        let home = ConfigHome()
        try home.write(".msmtprc", "account default\nhost 192.0.2.1\ntls off\nuser u\npassword p\ntimeout 1\n")
        let options = try SendCommand.parser.parse(["x@example.test"])
        let file = try AccountSettings.findFile(options, environment: home.environment, warn: { _ in })
        let settings = try AccountSettings.select(file: file, name: nil, sender: nil)
        let merged = try settings.merged(into: options, environment: home.environment)
        let configuration = try ConnectionOptions.configuration(
            merged, command: "send", environment: home.environment, password: settings.password(overriddenBy: options),
            warn: { _ in })
        #expect(configuration.tlsMode == .off)
        #expect(configuration.authentication?.allowUnencrypted == false)

        try home.write(".msmtprc", "account default\nhost 192.0.2.1\ntls off\nuser u\npassword p\nallow_plaintext_auth on\n")
        let allowedFile = try AccountSettings.findFile(options, environment: home.environment, warn: { _ in })
        let allowed = try AccountSettings.select(file: allowedFile, name: nil, sender: nil)
        let allowedOptions = try allowed.merged(into: options, environment: home.environment)
        let allowedConfiguration = try ConnectionOptions.configuration(
            allowedOptions, command: "send", environment: home.environment, password: allowed.password(overriddenBy: options),
            warn: { _ in })
        #expect(allowedConfiguration.authentication?.allowUnencrypted == true)
    }

    @Test func queuedMessageStoresAccountByReference() async throws {
        let home = ConfigHome()
        let closed = try ScriptedServer.closedPort()
        let path = try home.write(".msmtprc", """
            account default
            host 127.0.0.1
            port \(closed)
            from me@example.test
            user me
            password "do-not-store-me"
            queue only
            """)
        let queued = try await runOutbox(
            ["send", "bob@example.test"], input: "Subject: hi\n\nbody\n", environment: home.environment)
        #expect(queued.status == 0, "\(queued.error)")
        let store = try MailStore(url: URL(fileURLWithPath: home.path + "/store"))
        let message = try #require(try store.messages().first)
        #expect(!message.account.contains("do-not-store-me"))
        let decoded = try JSONDecoder().decode([String: String].self, from: Data(message.account.utf8))
        #expect(decoded == ["config": path, "account": "default"])
        let content = try String(contentsOf: store.contentURL(id: message.id), encoding: .utf8)
        #expect(!content.contains("do-not-store-me"))

        // The flush reads the file again: the server now listens on the port that the file names.
        let server = try ScriptedServer(script: authScript)
        defer { server.stop() }
        try home.write(".msmtprc", """
            account default
            host 127.0.0.1
            port \(server.port)
            user me
            password "do-not-store-me"
            auth plain
            timeout 5
            """)
        let flush = try await runOutbox(["queue", "flush"], environment: home.environment)
        #expect(flush.status == 0, "\(flush.error)")
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        #expect(lines.contains { $0 == "AUTH PLAIN " + Data("\0me\0do-not-store-me".utf8).base64EncodedString() })
        #expect(try store.message(id: message.id)?.folder == .sent)
    }

    @Test func aliasesReplaceLocalRecipients() async throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        try home.write("aliases", "# local names\nroot: admin@example.test, ops@example.test\ndefault: catchall@example.test\n")
        try home.write(".msmtprc", "account default\nhost 127.0.0.1\nport \(server.port)\ntimeout 5\naliases ~/aliases\n")
        let result = try await runOutbox(
            ["send", "root", "cron", "x@example.test"], input: "From: a@example.test\n\nbody\n",
            environment: home.environment)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let recipients = try #require(server.connections.first).lines.filter { $0.hasPrefix("RCPT") }
        #expect(recipients == [
            "RCPT TO:<admin@example.test>", "RCPT TO:<ops@example.test>", "RCPT TO:<catchall@example.test>",
            "RCPT TO:<x@example.test>",
        ])
    }

    @Test func aliasesReplaceHeaderRecipients() async throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        try home.write("aliases", "root: admin@example.test\n")
        try home.write(".msmtprc", "account default\nhost 127.0.0.1\nport \(server.port)\ntimeout 5\naliases ~/aliases\n")
        let input = "From: a@example.test\nTo: root, \"Doe, Jane\" <jane@example.test>\n\nbody\n"
        let result = try await runOutbox(["send", "-t"], input: input, environment: home.environment)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let recipients = try #require(server.connections.first).lines.filter { $0.hasPrefix("RCPT") }
        #expect(recipients == ["RCPT TO:<admin@example.test>", "RCPT TO:<jane@example.test>"])
        let data = String(decoding: try #require(server.connections.first?.messages.first), as: UTF8.self)
        #expect(data.contains("To: root, \"Doe, Jane\" <jane@example.test>\r\n"))
    }

    @Test func headerSettingsRewriteMessage() async throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        try home.write(".msmtprc", """
            account default
            host 127.0.0.1
            port \(server.port)
            timeout 5
            from robot@example.test
            from_full_name "Robot, the"
            set_from_header on
            undisclosed_recipients on
            """)
        let input = "From: someone@example.test\nTo: a@example.test\nCc: b@example.test\nSubject: s\n\nbody\n"
        let result = try await runOutbox(["send", "-t"], input: input, environment: home.environment)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let data = String(decoding: try #require(server.connections.first?.messages.first), as: UTF8.self)
        #expect(data.hasPrefix("From: \"Robot, the\" <robot@example.test>\r\nTo: undisclosed-recipients:;\r\nSubject: s\r\n"))
        #expect(!data.contains("someone@example.test"))
        let recipients = try #require(server.connections.first).lines.filter { $0.hasPrefix("RCPT") }
        #expect(recipients == ["RCPT TO:<a@example.test>", "RCPT TO:<b@example.test>"])
    }
}
