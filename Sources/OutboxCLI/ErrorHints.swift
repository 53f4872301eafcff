import SMTPCore

/// Advice, in terms of this command's options, for errors whose library message cannot name them.
enum ErrorHints {
    static func hint(for error: SMTPError) -> String? {
        switch error.kind {
        case .tlsFailed(let detail) where detail.contains("fingerprint") || detail.contains("trust"):
            "To trust the server's certificate on purpose, pass --tls-fingerprint SHA256 or --tls-trust-file FILE."
        case .tlsUnavailable:
            "If the server expects TLS from the first byte on this port, pass --tls implicit."
        case .authenticationUnavailable(let detail) where detail.contains("not encrypted"):
            "Pass --tls starttls or --tls implicit, or --allow-plaintext-auth if the network is trusted."
        case .timedOut:
            "Pass a larger --timeout or --deadline if the server is just slow."
        case .rejected where error.reply?.code == 530:
            "The server requires a login: pass --user and a password source."
        default:
            nil
        }
    }
}
