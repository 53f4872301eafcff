// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Outbox",
    products: [
        .executable(name: "outbox", targets: ["outbox"]),
        .library(name: "SMTPCore", targets: ["SMTPCore"]),
        .library(name: "SMTPClient", targets: ["SMTPClient"]),
        .library(name: "MailMessage", targets: ["MailMessage"]),
        .library(name: "MailStore", targets: ["MailStore"]),
    ],
    targets: [
        // The SMTP protocol without I/O: commands, replies, capabilities, the client state machine
        // and the DATA transparency transform.
        .target(name: "SMTPCore", dependencies: ["COpenSSL"]),
        // RFC 5322 messages: header fields and addresses. MIME: builder, writer, parser, encoders, charsets.
        .target(name: "MailMessage", dependencies: ["CIDN2"]),
        // libidn2 from Debian's libidn2-dev, for IDNA 2008 domain names with the UTS #46 mapping.
        .systemLibrary(name: "CIDN2", pkgConfig: "libidn2", providers: [.apt(["libidn2-dev"])]),
        // Sockets, timeouts and the driver that runs the SMTPCore state machine over a connection.
        .target(name: "SMTPClient", dependencies: ["SMTPCore", "COpenSSL"]),
        // The message store: folders, the SQLite index, leases and crash recovery.
        .target(name: "MailStore", dependencies: ["CSQLite"]),
        // The sender service: flushes the store's Outbox through SMTP connections, with the retry policy.
        .target(name: "Outbox", dependencies: ["MailStore", "SMTPClient", "SMTPCore"]),
        // SQLite from Debian's libsqlite3-dev, for the store's index.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // OpenSSL from Debian's libssl-dev, for TLS and the hashes that SASL mechanisms need.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // The `outbox` commands as a library, so that they can be tested without spawning processes.
        .target(name: "OutboxCLI", dependencies: ["SMTPCore", "SMTPClient", "MailMessage", "MailStore", "Outbox"]),
        .executableTarget(name: "outbox", dependencies: ["OutboxCLI"]),
        .executableTarget(
            name: "outbox-benchmark", dependencies: ["SMTPCore", "SMTPClient", "MailStore"], path: "Benchmarks/Sources"),

        // Real and scripted SMTP servers for the tests: Postfix, smtp-sink, and a server that follows a script.
        .target(name: "OutboxTestSupport", path: "Tests/Support", exclude: ["postfix-instance", "aiosmtpd-server.py"]),

        .testTarget(name: "SMTPCoreTests", dependencies: ["SMTPCore"]),
        .testTarget(name: "MailMessageTests", dependencies: ["MailMessage"]),
        .testTarget(name: "MailStoreTests", dependencies: ["MailStore"]),
        .testTarget(name: "OutboxTests", dependencies: ["Outbox", "MailStore", "SMTPClient", "OutboxTestSupport"]),
        .testTarget(name: "SMTPClientTests", dependencies: ["SMTPClient", "SMTPCore", "OutboxTestSupport"]),
        .testTarget(
            name: "OutboxCLITests",
            dependencies: ["OutboxCLI", "SMTPClient", "SMTPCore", "MailMessage", "MailStore", "OutboxTestSupport"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
