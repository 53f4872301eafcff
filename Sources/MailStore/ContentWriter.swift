import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a message's content to its new file in the store, piece by piece.
public final class ContentWriter {
    private var descriptor: Int32
    private let path: String
    /// The number of octets written so far.
    public private(set) var bytesWritten = 0

    /// Creates the file, which must not exist yet, readable and writable by its owner only.
    init(creating url: URL) throws(StoreError) {
        path = url.path
        descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StoreError.fileError(path: path, errno: errno) }
    }

    deinit {
        close()
    }

    /// Appends bytes to the file.
    ///
    /// - Throws: `StoreError.diskFull` when the disk is full, or another `StoreError.file`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        guard var base = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = Glibc.write(descriptor, base, remaining)
            if written < 0 {
                if errno == EINTR { continue }
                throw StoreError.fileError(path: path, errno: errno)
            }
            remaining -= written
            base += written
            bytesWritten += written
        }
    }

    /// Appends bytes to the file.
    public func write(_ bytes: [UInt8]) throws(StoreError) {
        let result: Result<Void, StoreError> = bytes.withUnsafeBytes { buffer in
            Result { () throws(StoreError) in try write(buffer) }
        }
        try result.get()
    }

    /// Appends the bytes of `url` from `offset` to its end, reading in pieces of 64 KiB.
    public func copy(from url: URL, offset: UInt64 = 0) throws(StoreError) {
        let source = Glibc.open(url.path, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw StoreError.fileError(path: url.path, errno: errno) }
        defer { Glibc.close(source) }
        if offset > 0, lseek(source, off_t(offset), SEEK_SET) < 0 {
            throw StoreError.fileError(path: url.path, errno: errno)
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(source, buffer.baseAddress, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw StoreError.fileError(path: url.path, errno: errno)
            }
            if count == 0 { return }
            try write(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// Flushes the file's content to the disk.
    func synchronize() throws(StoreError) {
        guard fsync(descriptor) == 0 else { throw StoreError.fileError(path: path, errno: errno) }
    }

    func close() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
    }
}
