import SMTPCore

/// The delivery status notification options of sendmail's -N, -R and -V, as RFC 3461 parameters.
enum DSNOptions {
    /// Parses -N: `never`, or a comma-separated list of `success`, `failure` and `delay`.
    static func notify(_ text: String) -> DeliveryStatusRequest.Notify? {
        let words = text.lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !words.isEmpty else { return nil }
        if words == ["never"] { return .never }
        guard words.allSatisfy({ ["success", "failure", "delay"].contains($0) }) else { return nil }
        return .on(success: words.contains("success"), failure: words.contains("failure"), delay: words.contains("delay"))
    }

    /// Parses -R: `full` or `hdrs` (msmtp's configuration also spells it `headers`).
    static func returnContent(_ text: String) -> DeliveryStatusRequest.Return? {
        switch text.lowercased() {
        case "full": .full
        case "hdrs", "headers": .headers
        default: nil
        }
    }

    /// Checks an ENVID: printable ASCII, at most 100 characters (RFC 3461 section 4.4).
    static func isValidEnvelopeID(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 100 && text.unicodeScalars.allSatisfy { (0x21...0x7E).contains($0.value) }
    }
}
