import Foundation

/// A throw-away PKI made with the openssl CLI: a CA and leaf certificates with the
/// SANs a test asks for. EC P-256 keys (fast to make).
final class TestPKI {
    let dir: String
    var ca: String { dir + "/ca.pem" }
    private var caKey: String { dir + "/ca.key" }

    struct Leaf {
        let cert: String
        let key: String
    }

    init() throws {
        dir = NSTemporaryDirectory() + "remora-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let cnf = """
        [req]
        distinguished_name = dn
        prompt = no
        x509_extensions = v3
        [dn]
        CN = Remora Test CA
        O = Remora
        [v3]
        basicConstraints = critical,CA:TRUE
        keyUsage = critical,keyCertSign,cRLSign
        subjectKeyIdentifier = hash

        """
        try cnf.write(toFile: dir + "/ca.cnf", atomically: true, encoding: .utf8)
        try TestPKI.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", caKey])
        try TestPKI.openssl(["req", "-x509", "-new", "-key", caKey, "-config", dir + "/ca.cnf", "-days", "3650", "-out", ca])
    }

    /// A leaf signed by the CA. `sans`: "DNS:x", "IP:1.2.3.4", "URI:spiffe://…".
    func leaf(_ name: String, cn: String, sans: [String], in subdir: String? = nil) throws -> Leaf {
        let d = subdir.map { dir + "/" + $0 } ?? dir
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        let key = d + "/\(name).key", csr = d + "/\(name).csr", ext = d + "/\(name).ext", cert = d + "/\(name).pem"
        var e = """
        basicConstraints = CA:FALSE
        keyUsage = critical,digitalSignature,keyEncipherment
        extendedKeyUsage = serverAuth,clientAuth
        subjectKeyIdentifier = hash
        authorityKeyIdentifier = keyid

        """
        if !sans.isEmpty { e += "subjectAltName = \(sans.joined(separator: ","))\n" }
        try e.write(toFile: ext, atomically: true, encoding: .utf8)
        try TestPKI.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
        try TestPKI.openssl(["req", "-new", "-key", key, "-subj", "/O=Remora/CN=\(cn)", "-out", csr])
        let serial = "0x" + (0..<16).map { _ in String("0123456789abcdef".randomElement()!) }.joined()
        try TestPKI.openssl(["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-set_serial", serial,
                             "-days", "825", "-extfile", ext, "-out", cert])
        return Leaf(cert: cert, key: key)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    struct Failure: Error, CustomStringConvertible { let description: String }

    static func openssl(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let msg = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            throw Failure(description: "openssl \(args.joined(separator: " ")): \(String(decoding: msg, as: UTF8.self))")
        }
    }
}
