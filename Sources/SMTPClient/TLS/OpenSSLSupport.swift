import COpenSSL

/// The text that OpenSSL writes to a memory BIO.
enum MemoryBIO {
    /// Runs `write` on a new memory BIO and returns what it wrote, decoded as UTF-8.
    static func text(_ write: (OpaquePointer) -> some Any) -> String {
        String(decoding: bytes(write), as: UTF8.self)
    }

    /// Runs `write` on a new memory BIO and returns what it wrote.
    static func bytes(_ write: (OpaquePointer) -> some Any) -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else {
            return []
        }
        defer {
            BIO_free(bio)
        }
        _ = write(bio)

        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            var count = 0
            guard BIO_read_ex(bio, &chunk, chunk.count, &count) == 1, count > 0 else {
                break
            }
            output += chunk.prefix(count)
        }
        return output
    }
}

/// The errors that OpenSSL records in its per-thread error queue.
enum OpenSSLErrorQueue {
    /// One recorded error: its packed code and its reason text, such as `unsupported protocol`.
    struct Entry {
        var code: UInt
        var reasonCode: Int32
        var reason: String
    }

    /// Removes every error recorded on this thread, so that the next SSL call's errors stand alone.
    /// SSL_get_error(3) requires an empty queue before the call that it examines.
    static func clear() {
        ERR_clear_error()
    }

    /// Removes and returns the errors recorded on this thread, oldest first.
    static func drain() -> [Entry] {
        var entries: [Entry] = []
        while true {
            let code = ERR_get_error()
            if code == 0 {
                return entries
            }
            let reasonText = ERR_reason_error_string(code).map { String(cString: $0) }
            let reasonCode = ERR_GET_REASON(code)
            entries.append(Entry(code: code, reasonCode: reasonCode, reason: reasonText ?? "error code \(reasonCode)"))
        }
    }

    /// Removes the recorded errors and joins their reasons, or returns `fallback` when there are none.
    static func drainedDescription(fallback: String) -> String {
        let reasons = drain().map(\.reason)
        return reasons.isEmpty ? fallback : reasons.joined(separator: ", ")
    }
}
