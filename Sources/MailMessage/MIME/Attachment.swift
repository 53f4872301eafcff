import Foundation

/// A file or piece of data attached to a composed message, or shown inline in its HTML.
public struct Attachment: Sendable {
    /// The origin of the content.
    public enum Source: Sendable {
        case data([UInt8])
        /// A file read in chunks while the message is written, so it is never held whole in memory.
        case file(path: String)
    }

    /// The content.
    public var source: Source
    /// The file name that recipients see, written as an RFC 2231 `filename` parameter.
    public var fileName: String
    /// The media type, such as `image/png`.
    public var mediaType: String
    /// Content-Type parameters, such as `charset` for text.
    public var parameters: [(name: String, value: String)]
    /// The Content-ID without angle brackets, which an HTML body refers to as `cid:ID`. Inline parts
    /// without one get a generated ID.
    public var contentID: String?

    /// Creates an attachment from bytes in memory.
    ///
    /// - Parameter mediaType: The media type, or nil to guess it from the extension of `fileName`.
    public init(data: [UInt8], fileName: String, mediaType: String? = nil) {
        self.source = .data(data)
        self.fileName = fileName
        self.mediaType = mediaType ?? MediaTypes.guess(forFileName: fileName)
        self.parameters = []
    }

    /// Creates an attachment from the file at `path`, named after the file's last path component unless
    /// `fileName` is given. The file is checked when the message is built and read when it is written.
    ///
    /// - Parameter mediaType: The media type, or nil to guess it from the extension of the file name, with
    ///   `application/octet-stream` for an unknown extension.
    public init(path: String, fileName: String? = nil, mediaType: String? = nil) {
        let name = fileName ?? URL(fileURLWithPath: path).lastPathComponent
        self.source = .file(path: path)
        self.fileName = name
        self.mediaType = mediaType ?? MediaTypes.guess(forFileName: name)
        self.parameters = []
    }

    /// Creates a message/rfc822 attachment, a message forwarded as a whole, from its bytes.
    public static func message(_ bytes: [UInt8], fileName: String = "forwarded.eml") -> Attachment {
        Attachment(data: bytes, fileName: fileName, mediaType: "message/rfc822")
    }

    /// Creates a text/vcard attachment (RFC 6350) from vCard text.
    public static func vCard(_ text: String, fileName: String = "contact.vcf") -> Attachment {
        var attachment = Attachment(data: Array(text.utf8), fileName: fileName, mediaType: "text/vcard")
        attachment.parameters = [("charset", "utf-8")]
        return attachment
    }
}

/// Media types guessed from file name extensions.
public enum MediaTypes {
    private static let byExtension: [String: String] = [
        "txt": "text/plain", "text": "text/plain", "log": "text/plain", "md": "text/markdown", "csv": "text/csv",
        "html": "text/html", "htm": "text/html", "css": "text/css", "xml": "application/xml", "json": "application/json",
        "vcf": "text/vcard", "ics": "text/calendar", "eml": "message/rfc822",
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
        "svg": "image/svg+xml", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff", "ico": "image/vnd.microsoft.icon",
        "pdf": "application/pdf", "zip": "application/zip", "gz": "application/gzip", "tgz": "application/gzip",
        "tar": "application/x-tar", "xz": "application/x-xz", "bz2": "application/x-bzip2", "7z": "application/x-7z-compressed",
        "doc": "application/msword", "xls": "application/vnd.ms-excel", "ppt": "application/vnd.ms-powerpoint",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
        "mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg", "mp4": "video/mp4", "webm": "video/webm",
        "mov": "video/quicktime",
    ]

    /// Returns the media type for the extension of `fileName`, compared without case, or
    /// `application/octet-stream` for an unknown or missing extension.
    public static func guess(forFileName fileName: String) -> String {
        guard let dot = fileName.lastIndex(of: "."), dot != fileName.startIndex else { return "application/octet-stream" }
        let fileExtension = fileName[fileName.index(after: dot)...].lowercased()
        return byExtension[fileExtension] ?? "application/octet-stream"
    }
}
