import Foundation

/// The account a command uses from the configuration file, turned into defaults for its options.
/// Options given on the command line override every setting of the file.
struct AccountSettings: Sendable {
    /// The file, or nil when there is none.
    let file: ConfigFile?
    /// The chosen account, or nil to use only the `defaults` section.
    let account: ConfigAccount?

    static let none = AccountSettings(file: nil, account: nil)

    /// The settings in effect: the account's, or else the defaults section's.
    var settings: ConfigAccount {
        account ?? file?.defaults ?? ConfigAccount(name: "defaults", settings: [:])
    }

    func value(_ key: String) -> String? { settings.value(key) }

    /// The account by reference, as queued messages keep it: the file's path and the account name,
    /// empty for the defaults section. The file is read again when the message is sent, so that a
    /// password in it is never copied into the store.
    var reference: [String: String]? {
        file.map { ["config": $0.path, "account": account?.name ?? ""] }
    }

    // MARK: - Finding the file

    /// Returns the file that `-C` names, or else the first that exists of
    /// `$XDG_CONFIG_HOME/outbox/config`, `~/.msmtprc` and `$XDG_CONFIG_HOME/msmtp/config`, or nil.
    /// `XDG_CONFIG_HOME` defaults to `~/.config`. Without HOME in the environment, only `-C` is read.
    static func findFile(
        _ options: ArgumentParser.Result, environment: [String: String], warn: (String) -> Void
    ) throws(ConfigError) -> ConfigFile? {
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
        let path: String
        if let given = options.value("-C") {
            path = given.hasPrefix("/") ? given : FileManager.default.currentDirectoryPath + "/" + given
        } else {
            guard let found = defaultPaths(environment: environment).first(where: {
                FileManager.default.fileExists(atPath: $0)
            }) else { return nil }
            path = found
        }
        let file = try ConfigFile.load(path: path, home: home)
        if file.containsPassword, file.readableByOthers {
            warn("Warning: \(path) contains a password and other users can read it; run 'chmod 600 \(path)'.")
        }
        if file.writableByOthers {
            warn("Warning: other users can change \(path) and the commands it runs; run 'chmod 600 \(path)'.")
        }
        return file
    }

    static func defaultPaths(environment: [String: String]) -> [String] {
        guard let home = environment["HOME"], !home.isEmpty else { return [] }
        let xdg = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.config"
        return [xdg + "/outbox/config", home + "/.msmtprc", xdg + "/msmtp/config"]
    }

    // MARK: - Choosing the account

    /// Chooses the account: the one `-a` names, else the first whose `from` matches the envelope
    /// sender (with `*` and `?` wildcards, ignoring case), else the account named `default`, else
    /// none, so that only the defaults section applies.
    static func select(
        file: ConfigFile?, name: String?, sender: String?
    ) throws(ConfigError) -> AccountSettings {
        guard let file else {
            if let name {
                throw ConfigError(
                    file: "", line: nil,
                    message: "The account \"\(name)\" was requested, but no configuration file was found. "
                        + "Name the file with -C FILE.")
            }
            return .none
        }
        if let name {
            guard let account = file.account(named: name) else {
                let names = file.accounts.map(\.name).joined(separator: ", ")
                throw ConfigError(
                    file: file.path, line: nil,
                    message: "no account is named \"\(name)\"; the accounts are: \(names.isEmpty ? "none" : names).")
            }
            return AccountSettings(file: file, account: account)
        }
        if let sender, !sender.isEmpty {
            if let match = file.accounts.first(where: { account in
                account.value("from").map { matches(pattern: $0, sender) } ?? false
            }) {
                return AccountSettings(file: file, account: match)
            }
        }
        return AccountSettings(file: file, account: file.account(named: "default"))
    }

    /// Matches an address against a `from` value that may contain `*` and `?`, ignoring case.
    static func matches(pattern: String, _ address: String) -> Bool {
        fnmatch(pattern.lowercased(), address.lowercased(), 0) == 0
    }

    // MARK: - Option defaults

    /// Option groups of which the command line may give one member: when it does, the file's
    /// settings for the whole group are dropped, so that they cannot conflict.
    static let exclusiveGroups: [[String]] = [
        ["--queue", "--queue-only", "--hold"],
        ["--tls-trust-file", "--tls-fingerprint", "--tls-certcheck"],
        ["--password-command", "--password-env", "--password-file"],
        ["--tls-cert-file", "--tls-key-file"],
    ]

    /// Returns the command-line options with the file's settings added where the command line
    /// gives none.
    ///
    /// - Parameter checkCredentials: whether a `user` without a password is an error; the queue
    ///   commands, which do not log in, pass false.
    func merged(
        into options: ArgumentParser.Result, environment: [String: String], checkCredentials: Bool = true
    ) throws(ConfigError) -> ArgumentParser.Result {
        var defaults = try optionDefaults(environment: environment)
        for group in Self.exclusiveGroups where group.contains(where: { options.values[$0] != nil }) {
            group.forEach { defaults[$0] = nil }
        }
        // The environment overrides the file, as the command line does.
        if let store = environment["OUTBOX_STORE"], !store.isEmpty {
            defaults["--store"] = nil
        }
        let merged = options.addingDefaults(defaults)
        if checkCredentials {
            try checkPasswordSource(merged, commandLine: options)
        }
        return merged
    }

    /// Rejects a `user` from the file that has no password: no `password` or `passwordeval` in
    /// the file and no password option on the command line.
    private func checkPasswordSource(_ merged: ArgumentParser.Result, commandLine: ArgumentParser.Result) throws(ConfigError) {
        guard commandLine.values["--user"] == nil, merged.values["--user"] != nil,
              let line = settings.settings["user"]?.line
        else { return }
        let sourceGiven = Self.exclusiveGroups[2].contains { merged.values[$0] != nil }
        if !sourceGiven, password(overriddenBy: commandLine) == nil {
            throw ConfigError(
                file: file?.path ?? "", line: line,
                message: "account \"\(settings.name)\" sets 'user' but neither 'password' nor 'passwordeval'. "
                    + "Add one, set 'auth off', or pass --password-command, --password-env or --password-file.")
        }
    }

    /// Returns the password written in the file, unless the command line names another password source.
    func password(overriddenBy options: ArgumentParser.Result) -> String? {
        let sourceGiven = Self.exclusiveGroups[2].contains { options.values[$0] != nil }
        guard !sourceGiven, value("auth") != "off" else { return nil }
        return value("password")
    }

    /// Returns the file's settings as the option values they stand for.
    func optionDefaults(environment: [String: String]) throws(ConfigError) -> [String: String] {
        var result: [String: String] = [:]
        let direct: [(String, String)] = [
            ("host", "--host"), ("port", "--port"), ("domain", "--helo"), ("from_full_name", "-F"),
            ("store", "--store"), ("retry_delay", "--retry-delay"), ("retry_max_delay", "--retry-max-delay"),
            ("max_queue_time", "--max-queue-time"), ("bounce_from", "--bounce-from"), ("parallel", "--parallel"),
        ]
        for (key, option) in direct {
            result[option] = value(key)
        }
        if let timeout = value("timeout"), timeout != "off" {
            result["--timeout"] = timeout
        }

        // msmtp's `tls on` with `tls_starttls off` is TLS from the first byte.
        switch value("tls") {
        case "off": result["--tls"] = "off"
        case "on": result["--tls"] = value("tls_starttls") == "off" ? "implicit" : "starttls"
        default: break
        }
        if usesTLS {
            if let fingerprint = value("tls_fingerprint") {
                result["--tls-fingerprint"] = fingerprint
            } else if value("tls_certcheck") == "off" {
                result["--tls-certcheck"] = "off"
            } else if let trust = value("tls_trust_file"), trust != "system" {
                result["--tls-trust-file"] = trust
            }
            result["--tls-cert-file"] = value("tls_cert_file")
            result["--tls-key-file"] = value("tls_key_file")
            result["--tls-min-version"] = value("tls_min_version")
        }

        try addAuthentication(to: &result)
        if value("allow_plaintext_auth") == "on" {
            result["--allow-plaintext-auth"] = ""
        }

        if let from = value("from"), !from.contains("*"), !from.contains("?") {
            result["-f"] = from
        } else if value("auto_from") == "on", let user = environment["USER"] ?? environment["LOGNAME"] {
            result["-f"] = "\(user)@\(value("maildomain") ?? ProcessInfo.processInfo.hostName)"
        }
        if let notify = value("dsn_notify"), notify != "off" {
            result["-N"] = notify
        }
        if let ret = value("dsn_return"), ret != "off" {
            result["-R"] = ret
        }
        if let logfile = value("logfile"), !logfile.isEmpty {
            result["-X"] = logfile
        }
        switch value("queue") {
        case "on": result["--queue"] = ""
        case "only": result["--queue-only"] = ""
        case "hold": result["--hold"] = ""
        default: break
        }
        return result
    }

    /// Whether the account's TLS settings apply. msmtp reads them only with `tls on`. Without a
    /// `tls` line Outbox still uses TLS for a server that is not on this machine, so they apply
    /// there too, but for a loopback server they would turn on TLS that msmtp leaves off.
    private var usesTLS: Bool {
        switch value("tls") {
        case "on": return true
        case "off": return false
        default:
            let host = value("host") ?? "localhost"
            return !(host == "localhost" || host == "::1" || host.hasPrefix("127."))
        }
    }

    private func addAuthentication(to result: inout [String: String]) throws(ConfigError) {
        let auth = value("auth")
        guard auth != "off" else { return }
        let user = value("user").flatMap { $0.isEmpty ? nil : $0 }
        guard let user else {
            if let auth, let line = settings.settings["auth"]?.line {
                throw ConfigError(
                    file: file?.path ?? "", line: line,
                    message: "'auth \(auth.lowercased())' in account \"\(settings.name)\" needs a 'user'.")
            }
            return
        }
        result["--user"] = user
        if let auth, auth != "on" {
            result["--auth"] = auth
        }
        if let command = value("passwordeval") {
            result["--password-command"] = command
        }
    }

    // MARK: - Other settings

    /// The syslog facility, or nil when messages are not logged to syslog.
    var syslogFacility: Int32? {
        value("syslog").flatMap { ConfigKeys.syslogFacilities[$0] }
    }
}
