import Foundation
import Glibc
import Synchronization

/// A Maildir, the directory format of qmail that mail readers such as mutt, Dovecot and notmuch read:
/// a directory with `tmp`, `new` and `cur` subdirectories and one file per message.
///
/// A message is written to `tmp` under a name unique to this host, process and delivery, synced to
/// disk, and then renamed into `new`, so a reader never sees a partial file
/// (https://cr.yp.to/proto/maildir.html).
///
/// Files contain the bytes received, so lines end in CRLF as SMTP sent them, not in the LF that qmail
/// writes. Capture keeps the message as the sending program produced it, because that is what a developer
/// wants to check. The trace fields that capture adds end in CRLF too.
struct Maildir: Sendable {
    /// The absolute path of the Maildir.
    let path: String
    /// The host name in file names, with "/" and ":" escaped as `\057` and `\072`, as the Maildir
    /// specification describes.
    private let hostPart: String

    /// Deliveries by this process, for unique file names.
    private static let deliveryCounter = Atomic<Int>(0)

    /// Opens the Maildir at `path`, creating it and any missing parent directory with mode 0700.
    ///
    /// - Throws: `MaildirError` when a directory cannot be created, is not a directory, or is not writable.
    init(creatingAt path: String) throws(MaildirError) {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        self.path = Self.normalized(absolute)
        hostPart = Self.hostName()
            .replacingOccurrences(of: "/", with: "\\057")
            .replacingOccurrences(of: ":", with: "\\072")
        try Self.createDirectory(self.path)
        for subdirectory in ["tmp", "new", "cur"] {
            try Self.createDirectory(self.path + "/" + subdirectory)
        }
        guard access(self.path + "/tmp", W_OK) == 0, access(self.path + "/new", W_OK) == 0 else {
            throw MaildirError(operation: "writing to the Maildir", path: self.path, errorNumber: EACCES)
        }
    }

    /// Writes a message into `new` and returns the path of its file. The file has mode 0600.
    ///
    /// - Throws: `MaildirError` naming the step that failed. No file is left in `tmp` after a failure.
    func deliver(_ bytes: [UInt8], date: Date = Date()) throws(MaildirError) -> String {
        let name = uniqueName(date: date)
        let temporaryPath = path + "/tmp/" + name
        let finalPath = path + "/new/" + name

        let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw MaildirError(operation: "creating", path: temporaryPath, errorNumber: errno)
        }
        do {
            // The umask can only clear bits of 0600, but set the mode anyway so it is exactly 0600.
            try Self.check(fchmod(descriptor, 0o600), "setting the mode of", temporaryPath)
            try Self.writeAll(bytes, to: descriptor, path: temporaryPath)
            try Self.check(fsync(descriptor), "syncing", temporaryPath)
            let status = Glibc.close(descriptor)
            try Self.check(status, "closing", temporaryPath)
        } catch {
            Glibc.close(descriptor)
            unlink(temporaryPath)
            throw error
        }
        guard rename(temporaryPath, finalPath) == 0 else {
            let errorNumber = errno
            unlink(temporaryPath)
            throw MaildirError(operation: "moving the message into", path: finalPath, errorNumber: errorNumber)
        }
        // Sync the directory too, so that the rename survives a crash.
        let directory = open(path + "/new", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            Glibc.close(directory)
        }
        return finalPath
    }

    /// Returns a name of the form `seconds.M<microseconds>P<pid>Q<delivery>.host`, which the Maildir
    /// specification recommends, so that two deliveries never share a name.
    private func uniqueName(date: Date) -> String {
        let delivery = Self.deliveryCounter.add(1, ordering: .relaxed).newValue
        let interval = date.timeIntervalSince1970
        let seconds = Int(interval)
        let microseconds = Int((interval - Double(seconds)) * 1_000_000)
        return "\(seconds).M\(microseconds)P\(getpid())Q\(delivery).\(hostPart)"
    }

    /// Creates a directory and its missing parents with mode 0700, leaving existing ones as they are.
    private static func createDirectory(_ path: String) throws(MaildirError) {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) == 0 {
                // mkdir applies the umask, which may remove the owner's bits; set the mode exactly.
                try check(chmod(prefix, 0o700), "setting the mode of", prefix)
                continue
            }
            let errorNumber = errno
            var status = stat()
            guard stat(prefix, &status) == 0 else {
                throw MaildirError(operation: "creating the directory", path: prefix, errorNumber: errorNumber)
            }
            guard status.st_mode & S_IFMT == S_IFDIR else {
                throw MaildirError(operation: "creating the directory", path: prefix, errorNumber: ENOTDIR)
            }
        }
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32, path: String) throws(MaildirError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress, buffer.count)
            }
            if count < 0 {
                if errno == EINTR {
                    continue
                }
                throw MaildirError(operation: "writing", path: path, errorNumber: errno)
            }
            offset += count
        }
    }

    private static func check(_ status: Int32, _ operation: String, _ path: String) throws(MaildirError) {
        if status != 0 {
            throw MaildirError(operation: operation, path: path, errorNumber: errno)
        }
    }

    /// Removes "." components and repeated slashes, so that printed paths are plain.
    private static func normalized(_ path: String) -> String {
        let components = path.split(separator: "/").filter { $0 != "." }
        return "/" + components.joined(separator: "/")
    }

    /// Returns the name of this machine from gethostname(2), or "localhost" when it has none.
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else {
            return "localhost"
        }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }
}

/// A failed step of creating a Maildir or saving a message in it.
struct MaildirError: Error, CustomStringConvertible {
    /// The step that failed, such as "creating" or "syncing".
    let operation: String
    let path: String
    let errorNumber: Int32

    var description: String {
        "\(operation) \(path) failed: \(String(cString: strerror(errorNumber)))"
    }
}

extension CapturedMessage {
    /// Returns the message as saved: Return-Path and Received fields (RFC 5321 section 4.4) followed by
    /// the content as received.
    ///
    /// - Parameters:
    ///   - clientAddress: the client's IP address as an address literal, such as `[127.0.0.1]`.
    ///   - serverName: the host name of the server, for the `by` clause.
    func savedBytes(clientAddress: String, serverName: String, date: Date) -> [UInt8] {
        var received = "Received: from \(clientName) (\(clientAddress))\r\n"
        received += "\tby \(serverName) (outbox capture) with \(transferProtocol)"
        // A single recipient is named, as most servers do; more would expose Bcc recipients to one another.
        if recipients.count == 1 {
            received += "\r\n\tfor <\(recipients[0])>"
        }
        received += ";\r\n\t\(Self.rfc5322Date(date))\r\n"
        let fields = "Return-Path: <\(sender)>\r\n" + received
        return Array(fields.utf8) + content
    }

    /// Formats a date in the syntax of RFC 5322 section 3.3, such as `Tue, 3 Jun 2025 14:05:09 +0200`.
    static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone.current
        formatter.dateFormat = "EEE, d MMM yyyy HH:mm:ss Z"
        return formatter.string(from: date)
    }
}
