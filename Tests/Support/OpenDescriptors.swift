import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The open descriptors of this process, read from /proc/self/fd.
///
/// NOTE: Linux only. Elsewhere `count` is 0 and `containsSocket(inode:)` is false.
public enum OpenDescriptors {
    public static var count: Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
    }

    /// Returns the socket inode of `descriptor`, as in the `socket:[inode]` link of /proc/self/fd.
    public static func socketInode(of descriptor: Int32) -> UInt {
        var status = stat()
        fstat(descriptor, &status)
        return UInt(status.st_ino)
    }

    /// Returns whether any open descriptor of the process refers to the socket with `inode`.
    public static func containsSocket(inode: UInt) -> Bool {
        !descriptors(ofSocket: inode).isEmpty
    }

    /// Returns the open descriptors of the process that refer to the socket with `inode`.
    public static func descriptors(ofSocket inode: UInt) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return entries.compactMap { entry in
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)")
            return target == "socket:[\(inode)]" ? Int32(entry) : nil
        }
    }
}

/// Returns the inodes of this process's open TCP sockets whose remote end is 127.0.0.1:`port`, read from
/// /proc/net/tcp. A closed socket is either gone from that table or listed with inode 0 (TIME_WAIT).
public func openClientSockets(connectedTo port: UInt16) -> [UInt] {
    guard let table = readProcFile("/proc/net/tcp") else { return [] }
    let remote = "0100007F:" + String(format: "%04X", port)
    return table.split(separator: "\n").dropFirst().compactMap { row -> UInt? in
        let fields = row.split(separator: " ")
        guard fields.count > 9, fields[2] == remote, let inode = UInt(fields[9]), inode != 0 else { return nil }
        return OpenDescriptors.containsSocket(inode: inode) ? inode : nil
    }
}

/// Returns the whole text of a file under /proc, or nil when it cannot be read.
///
/// Such files report a size of 0, and `String(contentsOfFile:)` and `Data(contentsOf:)` return only
/// the first 4 KiB page (4,050 of the 25,950 bytes of /proc/net/tcp, with the Foundation of Swift 6.3).
/// `FileHandle.readToEnd()` reads until the end of the file.
public func readProcFile(_ path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    do {
        let data = try handle.readToEnd() ?? Data()
        return String(decoding: data, as: UTF8.self)
    } catch {
        return nil
    }
}
