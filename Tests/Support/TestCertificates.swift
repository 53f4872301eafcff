import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Throwaway certificates for TLS tests, made with the `openssl` command in a temporary directory.
///
/// A test CA (`CN=Outbox Test CA`) issues the server, expired, not-yet-valid, other-name and client
/// certificates. The self-signed certificate has no issuer but itself. Every key is ECDSA P-256 and
/// unencrypted. Server certificates list `DNS:localhost`, `IP:127.0.0.1` and `IP:::1` unless noted.
///
/// `shared()` generates one set per test process and removes it when the process exits.
public struct TestCertificates: Sendable {
    /// A certificate and its private key, both PEM files.
    public struct Identity: Sendable, Hashable {
        public let certificatePath: String
        public let keyPath: String
    }

    public let directory: String
    /// The test CA's certificate, the trust file for every CA-issued certificate here.
    public let caCertificatePath: String
    /// For localhost, valid from its creation for 30 days.
    public let server: Identity
    /// For localhost, valid only from 2020-01-01 00:00:00 UTC to 2021-01-01 00:00:00 UTC.
    public let expired: Identity
    /// For localhost, valid only from 2099-01-01 00:00:00 UTC to 2100-01-01 00:00:00 UTC.
    public let notYetValid: Identity
    /// For `mail.other.test` only, with no IP address entries.
    public let otherName: Identity
    /// For localhost, signed by its own key.
    public let selfSigned: Identity
    /// A client certificate, `CN=Outbox Test Client`, with extendedKeyUsage clientAuth.
    public let client: Identity

    /// The validity periods of `expired` and `notYetValid`, as `openssl ca` takes them.
    public static let expiredStartDate = "20200101000000Z"
    public static let expiredEndDate = "20210101000000Z"
    public static let notYetValidStartDate = "20990101000000Z"
    public static let notYetValidEndDate = "21000101000000Z"

    /// The openssl command, from Debian's `openssl` package.
    public static let opensslPath = "/usr/bin/openssl"

    /// Returns the certificates shared by every test of this process, generating them on first use.
    public static func shared() throws -> TestCertificates {
        try sharedResult.get()
    }

    private static let sharedDirectory = NSTemporaryDirectory() + "outbox-test-certificates-\(getpid())"

    private static let sharedResult: Result<TestCertificates, any Error> = Result {
        let certificates = try generate(in: sharedDirectory)
        atexit {
            try? FileManager.default.removeItem(atPath: TestCertificates.sharedDirectory)
        }
        return certificates
    }

    /// Generates a full set in `directory`, which is created if needed.
    ///
    /// - Throws: `TestServerError.unavailable` without the openssl command, or `commandFailed` with
    ///   its output when a step fails.
    public static func generate(in directory: String) throws -> TestCertificates {
        guard FileManager.default.isExecutableFile(atPath: opensslPath) else {
            throw TestServerError.unavailable("\(opensslPath) is not installed (apt-get install openssl)")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let generator = Generator(directory: directory)
        try generator.writeConfiguration()

        let ca = try generator.makeSelfSigned(name: "ca", subject: "/CN=Outbox Test CA", extensions: "ca_extensions")
        let server = try generator.makeIssued(name: "server", subject: "/CN=localhost", extensions: "localhost_extensions")
        let expired = try generator.makeIssuedWithDates(
            name: "expired", subject: "/CN=localhost", extensions: "localhost_extensions",
            startDate: expiredStartDate, endDate: expiredEndDate
        )
        let notYetValid = try generator.makeIssuedWithDates(
            name: "not-yet-valid", subject: "/CN=localhost", extensions: "localhost_extensions",
            startDate: notYetValidStartDate, endDate: notYetValidEndDate
        )
        let otherName = try generator.makeIssued(
            name: "other-name", subject: "/CN=mail.other.test", extensions: "other_name_extensions"
        )
        let selfSigned = try generator.makeSelfSigned(
            name: "self-signed", subject: "/CN=localhost", extensions: "self_signed_extensions"
        )
        let client = try generator.makeIssued(
            name: "client", subject: "/CN=Outbox Test Client", extensions: "client_extensions"
        )

        return TestCertificates(
            directory: directory,
            caCertificatePath: ca.certificatePath,
            server: server,
            expired: expired,
            notYetValid: notYetValid,
            otherName: otherName,
            selfSigned: selfSigned,
            client: client
        )
    }

    /// Returns the SHA-256 fingerprint that `openssl x509 -fingerprint -sha256` prints for a PEM
    /// certificate: colon-separated upper-case hex.
    public static func sha256Fingerprint(ofCertificateAt path: String) throws -> String {
        let output = try runOpenSSL(["x509", "-in", path, "-noout", "-fingerprint", "-sha256"])
        // The output is one line such as "sha256 Fingerprint=AB:CD:...".
        guard let equals = output.firstIndex(of: "=") else {
            throw TestServerError.commandFailed(command: "openssl x509 -fingerprint", status: 0, output: output)
        }
        return output[output.index(after: equals)...].trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The openssl invocations behind `TestCertificates`.
private struct Generator {
    let directory: String

    private var configurationPath: String {
        "\(directory)/openssl.cnf"
    }

    private func path(_ name: String) -> String {
        "\(directory)/\(name)"
    }

    /// Writes the configuration for `openssl req`, `openssl x509` and `openssl ca`, with one extension
    /// section per kind of certificate and an `openssl ca` database in the directory.
    func writeConfiguration() throws {
        let configuration = """
        [ req ]
        distinguished_name = request_name
        [ request_name ]

        [ ca ]
        default_ca = test_ca
        [ test_ca ]
        database = \(path("index.txt"))
        new_certs_dir = \(directory)
        certificate = \(path("ca.pem"))
        private_key = \(path("ca.key"))
        rand_serial = yes
        default_md = sha256
        policy = any_subject
        unique_subject = no
        copy_extensions = none
        [ any_subject ]
        commonName = supplied

        [ ca_extensions ]
        basicConstraints = critical, CA:TRUE
        keyUsage = critical, keyCertSign, cRLSign
        subjectKeyIdentifier = hash
        [ localhost_extensions ]
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
        subjectKeyIdentifier = hash
        authorityKeyIdentifier = keyid
        [ other_name_extensions ]
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:mail.other.test
        subjectKeyIdentifier = hash
        authorityKeyIdentifier = keyid
        [ self_signed_extensions ]
        basicConstraints = critical, CA:FALSE
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
        subjectKeyIdentifier = hash
        [ client_extensions ]
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature
        extendedKeyUsage = clientAuth
        subjectKeyIdentifier = hash
        authorityKeyIdentifier = keyid

        """
        try configuration.write(toFile: configurationPath, atomically: true, encoding: .utf8)
        try "".write(toFile: path("index.txt"), atomically: true, encoding: .utf8)
    }

    /// Makes a certificate signed by its own new key, valid for 30 days.
    func makeSelfSigned(name: String, subject: String, extensions: String) throws -> TestCertificates.Identity {
        let identity = identity(name)
        try runOpenSSL([
            "req", "-x509", "-new", "-config", configurationPath, "-extensions", extensions,
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", identity.keyPath, "-out", identity.certificatePath, "-subj", subject, "-days", "30",
        ])
        return identity
    }

    /// Makes a certificate that the test CA issues, valid for 30 days from now.
    func makeIssued(name: String, subject: String, extensions: String) throws -> TestCertificates.Identity {
        let identity = identity(name)
        let request = try makeRequest(identity, subject: subject)
        try runOpenSSL([
            "x509", "-req", "-in", request, "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial",
            "-days", "30", "-sha256", "-extfile", configurationPath, "-extensions", extensions,
            "-out", identity.certificatePath,
        ])
        return identity
    }

    /// Makes a certificate that the test CA issues with explicit validity dates. These need `openssl ca`,
    /// because `openssl x509` and `openssl req` of OpenSSL 3.0 have no -not_before or -not_after option.
    func makeIssuedWithDates(
        name: String,
        subject: String,
        extensions: String,
        startDate: String,
        endDate: String
    ) throws -> TestCertificates.Identity {
        let identity = identity(name)
        let request = try makeRequest(identity, subject: subject)
        try runOpenSSL([
            "ca", "-batch", "-notext", "-config", configurationPath, "-extensions", extensions,
            "-startdate", startDate, "-enddate", endDate, "-in", request, "-out", identity.certificatePath,
        ])
        return identity
    }

    private func identity(_ name: String) -> TestCertificates.Identity {
        TestCertificates.Identity(certificatePath: path("\(name).pem"), keyPath: path("\(name).key"))
    }

    /// Makes a new key and a certificate request for it, and returns the request's path.
    private func makeRequest(_ identity: TestCertificates.Identity, subject: String) throws -> String {
        let request = identity.certificatePath.replacingOccurrences(of: ".pem", with: ".csr")
        try runOpenSSL([
            "req", "-new", "-config", configurationPath, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", identity.keyPath, "-out", request, "-subj", subject,
        ])
        return request
    }
}

/// Runs the openssl command with `arguments` and returns its standard output and standard error.
///
/// - Throws: `TestServerError.commandFailed` with that output when it exits with a nonzero status.
@discardableResult
private func runOpenSSL(_ arguments: [String]) throws -> String {
    let outputPath = NSTemporaryDirectory() + "outbox-openssl-\(UUID().uuidString).log"
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: outputPath)
    }
    let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
    defer {
        try? output.close()
    }

    let process = Process()
    process.executableURL = URL(fileURLWithPath: TestCertificates.opensslPath)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = output
    process.standardError = output
    try process.run()
    process.waitUntilExit()

    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    guard process.terminationStatus == 0 else {
        throw TestServerError.commandFailed(
            command: "openssl " + arguments.joined(separator: " "),
            status: process.terminationStatus,
            output: text
        )
    }
    return text
}
