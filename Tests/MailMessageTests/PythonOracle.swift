import Foundation

/// Runs a script with Debian's /usr/bin/python3, whose `email` package serves as a decoder written
/// independently of the code under test. The script reads the input from the file named by `sys.argv[1]`
/// and writes its result to standard output.
enum PythonOracle {
    static let executable = URL(fileURLWithPath: "/usr/bin/python3")

    static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: executable.path) }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func run(_ script: String, input: [UInt8]) throws -> [UInt8] {
        let inputFile = FileManager.default.temporaryDirectory.appendingPathComponent("oracle-\(UUID().uuidString)")
        try Data(input).write(to: inputFile)
        defer { try? FileManager.default.removeItem(at: inputFile) }
        return try runProcess(executable, ["-c", script, inputFile.path])
    }

    static func runProcess(_ executable: URL, _ arguments: [String]) throws -> [UInt8] {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("oracle-out-\(UUID().uuidString)")
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("oracle-err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outputFile)
            try? FileManager.default.removeItem(at: errorFile)
        }
        process.standardOutput = try FileHandle(forWritingTo: outputFile)
        process.standardError = try FileHandle(forWritingTo: errorFile)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let output = try Data(contentsOf: outputFile)
        guard process.terminationStatus == 0 else {
            let error = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
            throw Failure(description: "\(executable.lastPathComponent) exited with \(process.terminationStatus): \(error)")
        }
        return Array(output)
    }
}
