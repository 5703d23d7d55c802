#if canImport(Glibc)
import Glibc
#endif

/// What says a file changed: device, inode, size and mtime of the path with symlinks
/// followed. A Kubernetes secret update swaps the `..data` symlink, so the target's
/// inode changes even when size and mtime happen to match.
struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let mtimeSec: Int
    let mtimeNsec: Int

    /// nil when the path cannot be stat'ed (missing, no permission).
    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeSec = Int(st.st_mtim.tv_sec)
        mtimeNsec = Int(st.st_mtim.tv_nsec)
    }
}
