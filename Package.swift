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
        // The one import for programs: Mailer, the transports and OutboxService, with the modules
        // above re-exported.
        .library(name: "Outbox", targets: ["Outbox"]),
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
        // Also the library's front: Mailer, the transports, OutboxService, and the re-exports.
        .target(name: "Outbox", dependencies: ["MailStore", "SMTPClient", "SMTPCore", "MailMessage"]),
        // SQLite from Debian's libsqlite3-dev, for the store's index.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // OpenSSL from Debian's libssl-dev, for TLS and the hashes that SASL mechanisms need.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // The `outbox` commands as a library, so that they can be tested without spawning processes.
        .target(name: "OutboxCLI", dependencies: ["SMTPCore", "SMTPClient", "MailMessage", "MailStore", "Outbox"]),
        .executableTarget(name: "outbox", dependencies: ["OutboxCLI"]),
        // Examples of the library, built with the package. OutboxAPITests runs each of them against
        // a server on loopback.
        .executableTarget(name: "SendWithAttachmentExample", dependencies: ["Outbox"], path: "Examples/SendWithAttachment"),
        .executableTarget(name: "OutboxServiceExample", dependencies: ["Outbox"], path: "Examples/OutboxService"),
        .executableTarget(
            name: "TestWithInMemoryTransportExample", dependencies: ["Outbox"], path: "Examples/TestWithInMemoryTransport"),
        .executableTarget(name: "OAuth2TokenExample", dependencies: ["Outbox"], path: "Examples/OAuth2Token"),
        .executableTarget(
            name: "outbox-benchmark", dependencies: ["SMTPCore", "SMTPClient", "MailStore"], path: "Benchmarks/Sources"),

        // Real and scripted SMTP servers for the tests: Postfix, smtp-sink, and a server that follows a script.
        // Also the phases, faults and scripts of the fault matrices, and descriptor leak checks.
        .target(
            name: "OutboxTestSupport", dependencies: ["SMTPCore", "SMTPClient"], path: "Tests/Support",
            exclude: ["postfix-instance", "aiosmtpd-server.py"]),

        .testTarget(name: "SMTPCoreTests", dependencies: ["SMTPCore"]),
        .testTarget(name: "MailMessageTests", dependencies: ["MailMessage"]),
        .testTarget(name: "MailStoreTests", dependencies: ["MailStore"]),
        .testTarget(name: "OutboxTests", dependencies: ["Outbox", "MailStore", "SMTPClient", "OutboxTestSupport"]),
        // The public API as a program uses it: imports Outbox without @testable.
        .testTarget(name: "OutboxAPITests", dependencies: ["Outbox", "OutboxTestSupport"]),
        .testTarget(name: "SMTPClientTests", dependencies: ["SMTPClient", "SMTPCore", "OutboxTestSupport"]),
        .testTarget(
            name: "OutboxCLITests",
            dependencies: ["OutboxCLI", "SMTPClient", "SMTPCore", "MailMessage", "MailStore", "OutboxTestSupport"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
