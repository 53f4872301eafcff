import Foundation
import SMTPClient
#if canImport(Glibc)
import Glibc
#endif

/// One message's outcome as a log line, with the field names of msmtp's log:
/// `host=… tls=… auth=… user=… from=… recipients=… mailsize=… smtpstatus=… smtpmsg='…'
/// errormsg='…' exitcode=EX_…`. It never contains a password: the configuration's credentials
/// appear only as `auth=on` and the user name.
///
/// NOTE: the fields and their order follow msmtp's log lines as users post them; they were not
/// checked against msmtp's source, so a parser written for msmtp's log may need adjusting.
struct DeliveryLogEntry: Sendable {
    var host: String
    /// `on` when TLS is required, `opportunistic` when it is used if offered, `off` otherwise.
    var tls: String
    var user: String?
    var from: String
    var recipients: [String]
    var size: Int?
    var smtpStatus: Int?
    var smtpMessage: String?
    var error: String?
    var exitCode: ExitCode

    /// The line without a date, as syslog gets it.
    var line: String {
        var fields = ["host=\(host)", "tls=\(tls)", "auth=\(user == nil ? "off" : "on")"]
        if let user {
            fields.append("user=\(Self.clean(user))")
        }
        fields.append("from=\(from)")
        fields.append("recipients=\(recipients.joined(separator: ","))")
        if let size {
            fields.append("mailsize=\(size)")
        }
        if let smtpStatus {
            fields.append("smtpstatus=\(smtpStatus)")
        }
        if let smtpMessage {
            fields.append("smtpmsg='\(Self.clean(smtpMessage))'")
        }
        if let error {
            fields.append("errormsg='\(Self.clean(error))'")
        }
        fields.append("exitcode=\(exitCode.name)")
        return fields.joined(separator: " ")
    }

    /// Replaces line breaks and other control characters with spaces, and single quotes with
    /// double quotes, so that a reply cannot end a quoted field or start a forged log line.
    static func clean(_ text: String) -> String {
        String(text.unicodeScalars.map { scalar -> Character in
            if scalar.value < 0x20 || scalar.value == 0x7F { return " " }
            if scalar == "'" { return "\"" }
            return Character(scalar)
        })
    }
}

/// The destinations of log lines: a file (`logfile` or -X, where `-` is standard output), syslog
/// (`syslog`), both or neither.
struct DeliveryLog: Sendable {
    let file: String?
    let syslogFacility: Int32?
    let console: Console

    var isEnabled: Bool { file != nil || syslogFacility != nil }

    /// Writes one line. A failure to write the file is reported on standard error and otherwise
    /// ignored, because the message itself was handled.
    func write(_ line: String, isError: Bool = false, command: String) {
        if let file {
            let stamped = Self.fileLine(line, date: Date()) + "\n"
            if file == "-" {
                console.writeOutput(stamped)
            } else if let failure = Self.append(stamped, to: file) {
                console.printError("outbox \(command): writing the log file \(file) failed: \(failure)")
            }
        }
        if let facility = syslogFacility {
            Self.sendToSyslog(line, priority: facility | (isError ? LOG_ERR : LOG_INFO))
        }
    }

    /// Returns a line as the log file gets it: the local time as `Dec 04 19:40:05`, then the line.
    static func fileLine(_ line: String, date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "MMM dd HH:mm:ss"
        return "\(formatter.string(from: date)) \(line)"
    }

    /// Appends to the file, creating it readable only by its owner. Returns the error text, or nil.
    private static func append(_ text: String, to path: String) -> String? {
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return String(cString: strerror(errno)) }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        return written == bytes.count ? nil : String(cString: strerror(errno))
    }

    private static func sendToSyslog(_ line: String, priority: Int32) {
        // A nil ident makes syslog use the program name. openlog keeps the pointer it gets, so a
        // temporary C string would dangle.
        openlog(nil, LOG_PID, 0)
        line.withCString { text in
            withVaList([text]) { vsyslog(priority, "%s", $0) }
        }
        closelog()
    }
}

extension ExitCode {
    /// The constant's name in sysexits.h, as msmtp's log writes it.
    var name: String {
        switch self {
        case .success: "EX_OK"
        case .usage: "EX_USAGE"
        case .dataError: "EX_DATAERR"
        case .noInput: "EX_NOINPUT"
        case .noUser: "EX_NOUSER"
        case .noHost: "EX_NOHOST"
        case .unavailable: "EX_UNAVAILABLE"
        case .software: "EX_SOFTWARE"
        case .osError: "EX_OSERR"
        case .ioError: "EX_IOERR"
        case .temporaryFailure: "EX_TEMPFAIL"
        case .protocolError: "EX_PROTOCOL"
        case .noPermission: "EX_NOPERM"
        case .configuration: "EX_CONFIG"
        }
    }
}

extension DeliveryLogEntry {
    /// Starts an entry for a message sent with this configuration, with exit status EX_OK until
    /// the outcome is known.
    init(configuration: SMTPClientConfiguration, sender: String, recipients: [String], size: Int?) {
        let tls: String
        let host = configuration.host
        let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        switch configuration.effectiveTLSMode(remoteIsLoopback: loopback) {
        case .off: tls = "off"
        case .opportunisticStartTLS: tls = "opportunistic"
        case .requiredStartTLS, .implicit: tls = "on"
        }
        self.init(
            host: configuration.host, tls: tls, user: configuration.authentication?.credentials.username,
            from: sender, recipients: recipients, size: size, exitCode: .success)
    }

    init(configuration: SMTPClientConfiguration, prepared: PreparedMessage, size: Int?) {
        self.init(
            configuration: configuration, sender: prepared.envelope.sender,
            recipients: prepared.envelope.recipients.map(\.address), size: size)
    }
}
