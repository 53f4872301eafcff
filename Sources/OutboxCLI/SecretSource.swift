import Foundation
import SMTPCore

/// The source of a password or token. It is never the command line itself, because other users can
/// read a process's arguments in /proc.
enum SecretSource {
    /// The first line of a shell command's standard output, as msmtp's `passwordeval`.
    case command(String)
    /// An environment variable.
    case environment(String)
    /// The first line of a file. The file should be readable only by its owner.
    case file(String)
    /// A `password` written in the configuration file.
    case configured(String)

    /// Reads the secret.
    ///
    /// - Parameter warn: receives a warning when a file is readable by other users.
    /// - Throws: `SendCommand.Failure` naming the source (never the secret) and what to do.
    func read(environment: [String: String], warn: (String) -> Void) throws -> Secret {
        switch self {
        case .command(let command):
            return Secret(try Self.runCommand(command))
        case .environment(let name):
            guard let value = environment[name], !value.isEmpty else {
                throw SendCommand.Failure(
                    message: "The environment variable \(name) that should hold the password is not set or empty.",
                    exitCode: .configuration)
            }
            return Secret(value)
        case .file(let path):
            return Secret(try Self.readFile(path, warn: warn))
        case .configured(let password):
            return Secret(password)
        }
    }

    private static func readFile(_ path: String, warn: (String) -> Void) throws -> String {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw SendCommand.Failure(
                message: "The password file \(path) cannot be read: \(String(cString: strerror(errno))).",
                exitCode: .configuration)
        }
        if status.st_mode & (S_IRWXG | S_IRWXO) != 0 {
            warn("Warning: the password file \(path) can be read by other users; run 'chmod 600 \(path)'.")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SendCommand.Failure(message: "The password file \(path) cannot be read.", exitCode: .configuration)
        }
        let line = firstLine(of: data)
        guard !line.isEmpty else {
            throw SendCommand.Failure(message: "The password file \(path) is empty.", exitCode: .configuration)
        }
        return line
    }

    private static func runCommand(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw SendCommand.Failure(
                message: "The password command could not be started: \(error.localizedDescription)",
                exitCode: .configuration)
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SendCommand.Failure(
                message: "The password command failed with exit status \(process.terminationStatus).",
                exitCode: .configuration)
        }
        let line = firstLine(of: data)
        guard !line.isEmpty else {
            throw SendCommand.Failure(message: "The password command printed nothing.", exitCode: .configuration)
        }
        return line
    }

    /// Returns the text up to the first line ending, which password managers add after the secret.
    private static func firstLine(of data: Data) -> String {
        let text = String(decoding: data, as: UTF8.self)
        return String(text.prefix { $0 != "\n" && $0 != "\r" })
    }
}
