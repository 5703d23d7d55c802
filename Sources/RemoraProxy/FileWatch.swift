#if canImport(Glibc)
import Glibc
#endif

/// Notices when configuration files change: each path, and each entry of a directory,
/// by inode, size and modification time with symlinks followed — so a ConfigMap volume
/// update, which swaps the `..data` symlink, is seen as a change.
final class FileWatch {
    private let paths: [String]
    private var last: [String: [Int]]

    init(paths: [String]) {
        self.paths = paths
        last = [:]
        last = signature()
    }

    /// Whether anything changed since the last call (or since creation).
    func changed() -> Bool {
        let now = signature()
        defer { last = now }
        return now != last
    }

    private func signature() -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for p in paths {
            out[p] = identity(p)
            guard let dir = opendir(p) else { continue }
            defer { closedir(dir) }
            while let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                if name == "." || name == ".." { continue }
                let full = p.hasSuffix("/") ? p + name : p + "/" + name
                out[full] = identity(full)
            }
        }
        return out
    }

    private func identity(_ path: String) -> [Int] {
        var st = stat()
        guard stat(path, &st) == 0 else { return [-1] }
        return [Int(st.st_ino), Int(st.st_size), Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec)]
    }
}
