import SMTPCore

/// Exit statuses of sendmail and its successors, from BSD's sysexits.h, so that programs that run
/// `outbox` as their sendmail can tell a temporary failure from a permanent one.
public enum ExitCode: Int32, Sendable, CaseIterable {
    case success = 0
    /// EX_USAGE: the command line is wrong.
    case usage = 64
    /// EX_DATAERR: the message or an address in it is invalid.
    case dataError = 65
    /// EX_NOINPUT: the input file does not exist or cannot be read.
    case noInput = 66
    /// EX_NOUSER: the server rejected a recipient permanently.
    case noUser = 67
    /// EX_NOHOST: the server's host name does not exist.
    case noHost = 68
    /// EX_UNAVAILABLE: the server refused the message permanently, or lacks a needed extension.
    case unavailable = 69
    /// EX_SOFTWARE: an internal error.
    case software = 70
    /// EX_OSERR: an operating system error, such as failing to create a temporary file.
    case osError = 71
    /// EX_IOERR: reading or writing a local file failed.
    case ioError = 74
    /// EX_TEMPFAIL: a temporary failure; trying again later may succeed.
    case temporaryFailure = 75
    /// EX_PROTOCOL: the server broke the SMTP protocol.
    case protocolError = 76
    /// EX_NOPERM: permission denied, such as a login the server rejected.
    case noPermission = 77
    /// EX_CONFIG: the configuration is wrong.
    case configuration = 78

    /// Creates the status for a failed SMTP session or transaction.
    public init(_ error: SMTPError) {
        switch error.kind {
        case .invalidMessage, .invalidArgument, .messageTooLarge:
            self = .dataError
        case .protocolViolation:
            self = .protocolError
        case .extensionNotSupported:
            self = .unavailable
        case .authenticationFailed where !error.isTemporary:
            self = .noPermission
        case .connectionFailed where !error.isTemporary:
            self = .noHost
        case .allRecipientsRejected where !error.isTemporary:
            self = .noUser
        case .rejected where error.phase == .rcpt && !error.isTemporary:
            self = .noUser
        default:
            self = error.isTemporary ? .temporaryFailure : .unavailable
        }
    }
}
