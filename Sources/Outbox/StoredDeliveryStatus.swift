import SMTPCore

/// The RFC 3461 options of a queued message as the store keeps them: the message's
/// `envelopeOptions` as `RET=HDRS ENVID=id` and each recipient's `parameters` as
/// `NOTIFY=SUCCESS,FAILURE`. Words that are not such parameters, such as the failure notice
/// marker, are ignored.
public enum StoredDeliveryStatus {
    public static func envelopeOptions(_ request: DeliveryStatusRequest?) -> String? {
        guard let request else { return nil }
        var words: [String] = []
        if let ret = request.returnContent {
            words.append("RET=\(ret.rawValue)")
        }
        if let id = request.envelopeID {
            words.append("ENVID=\(id)")
        }
        return words.isEmpty ? nil : words.joined(separator: " ")
    }

    public static func request(fromEnvelopeOptions text: String?) -> DeliveryStatusRequest? {
        guard let text else { return nil }
        var request = DeliveryStatusRequest()
        var found = false
        for word in text.split(separator: " ") {
            if word.hasPrefix("RET="), let ret = DeliveryStatusRequest.Return(rawValue: String(word.dropFirst(4))) {
                request.returnContent = ret
                found = true
            } else if word.hasPrefix("ENVID="), word.count > 6 {
                request.envelopeID = String(word.dropFirst(6))
                found = true
            }
        }
        return found ? request : nil
    }

    public static func parameters(_ notify: DeliveryStatusRequest.Notify?) -> String? {
        switch notify {
        case nil:
            return nil
        case .never:
            return "NOTIFY=NEVER"
        case .on(let success, let failure, let delay):
            let names = [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")].filter(\.0).map(\.1)
            return names.isEmpty ? nil : "NOTIFY=" + names.joined(separator: ",")
        }
    }

    public static func notify(fromParameters text: String?) -> DeliveryStatusRequest.Notify? {
        guard let text else { return nil }
        for word in text.split(separator: " ") where word.hasPrefix("NOTIFY=") {
            let names = word.dropFirst(7).split(separator: ",").map(String.init)
            if names == ["NEVER"] { return .never }
            let notify = DeliveryStatusRequest.Notify.on(
                success: names.contains("SUCCESS"), failure: names.contains("FAILURE"), delay: names.contains("DELAY"))
            return notify
        }
        return nil
    }
}
