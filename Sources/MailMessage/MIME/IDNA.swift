/// Placeholder replaced by the libidn2 conversion.
enum IDNA {
    struct Failure: Error {}
    static func toASCII(_ domain: String) throws -> String {
        guard domain.utf8.allSatisfy({ $0 < 0x80 }) else { throw Failure() }
        return domain
    }
}
