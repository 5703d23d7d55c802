import RemoraConfig
#if canImport(Glibc)
import Glibc
#endif

/// Output of `remora ctl`: bodies, tables for history and explain.
enum CtlFormat {
    static func outputFormat(_ s: String) throws(CtlFailure) -> String {
        switch s.lowercased() {
        case "json": return "json"
        case "yaml", "yml": return "yaml"
        default: throw CtlFailure.usage("-o must be json or yaml, got '\(s)'")
        }
    }

    /// The body as received; JSON is re-indented (key order kept) when it parses.
    static func printBody(_ r: CtlResponse, format: String) {
        var text = r.text
        let type = r.header("content-type")?.lowercased() ?? ""
        let first = text.first { !$0.isWhitespace }
        if format == "json", !type.contains("yaml"), first == "{" || first == "[",
           let v = try? ConfigValue.parse(text), v != .null {
            text = v.jsonString(pretty: true)
        }
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        fputs(text, stdout)
    }

    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }

    /// RFC 3986 unreserved characters kept; everything else %XX (names in paths).
    static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = String(b, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    /// Left-aligned columns separated by two spaces; the last column is not padded.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all { for (i, c) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for row in all {
            var line = ""
            for (i, c) in row.enumerated() {
                if i == row.count - 1 { line += c } else { line += c + String(repeating: " ", count: widths[i] - c.count + 2) }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    // MARK: history

    /// VERSION  TIME  [CAUSE]  CHANGED, in the server's order; the version in force starred.
    static func printHistory(_ r: CtlResponse) {
        guard let body = CtlAdmin.json(r) else { printBody(r, format: "json"); return }
        let list = CtlJSON.array(body)
            ?? ["history", "versions", "items", "entries"].lazy.compactMap { CtlJSON.array(body[$0]) }.first
        guard let list else { printBody(r, format: "json"); return }
        let current = CtlJSON.int(body["version"] ?? body["current"]) ?? r.etagVersion
        var rows: [[String]] = []
        var anyCause = false
        for e in list {
            let v = CtlJSON.int(e["version"])
            var version = v.map(String.init) ?? CtlJSON.text(e["version"])
            if let v, v == current || CtlJSON.bool(e["current"]) == true { version += "*" }
            let time = CtlJSON.text(e["time"] ?? e["timestamp"] ?? e["appliedAt"] ?? e["at"])
            var cause = CtlJSON.text(e["cause"] ?? e["source"] ?? e["reason"])
            if cause.isEmpty { cause = "-" } else { anyCause = true }
            var what: [String] = []
            if let changed = e["changed"] ?? e["changes"] ?? e["change"] {
                what = CtlJSON.array(changed)?.map(CtlAdmin.describeChanged) ?? [CtlJSON.text(changed)]
            }
            for k in ["summary", "description"] {
                if let s = e[k]?.stringValue, !s.isEmpty { what.append(s) }
            }
            rows.append([version, time.isEmpty ? "-" : time, cause, what.isEmpty ? "-" : what.joined(separator: ", ")])
        }
        if anyCause {
            fputs(table(["VERSION", "TIME", "CAUSE", "CHANGED"], rows), stdout)
        } else {
            fputs(table(["VERSION", "TIME", "CHANGED"], rows.map { [$0[0], $0[1], $0[3]] }), stdout)
        }
    }

    // MARK: explain

    /// RULE  MATCHED  REASONS  DESTINATION, one row per rule tried, then a "=>" line with the
    /// outcome. Falls back to the JSON body when it is not in a shape this understands.
    static func printExplain(_ r: CtlResponse) {
        guard let body = CtlAdmin.json(r) else { printBody(r, format: "json"); return }
        let list = CtlJSON.array(body)
            ?? ["rules", "tried", "explanation", "steps", "results"].lazy.compactMap { CtlJSON.array(body[$0]) }.first
        let topVS = vsName(body["virtualService"] ?? body["virtualservice"])
        guard let list else {
            if case .object = body, let d = destinations(body), !d.isEmpty {
                fputs("=> \(topVS.map { "\($0): " } ?? "")\(d)\n", stdout)
            } else {
                printBody(r, format: "json")
            }
            return
        }
        var rows: [[String]] = []
        var winner: [String]?
        for (i, e) in list.enumerated() {
            let vs = vsName(e["virtualService"] ?? e["virtualservice"]) ?? topVS
            let matched = CtlJSON.bool(e["matched"] ?? e["match"] ?? e["matches"]) ?? false
            var reasons: [String] = []
            if let a = CtlJSON.array(e["reasons"]) { reasons = a.map { CtlJSON.text($0) } }
            else if let s = (e["reason"] ?? e["why"])?.stringValue { reasons = [s] }
            // This rule's destination(s): its own; for the rule that matched, the reply's (resolved
            // ports); else the rule as written (`definition`).
            var dest = destinations(e)
            if dest == nil && matched, let d = destinations(body), !d.isEmpty { dest = d }
            if dest == nil { dest = e["definition"].flatMap { destinations($0) } }
            let label = (vs.map { "\($0) " } ?? "") + ruleLabel(e, position: i, virtualService: vs)
            rows.append([label, matched ? "yes" : "no", reasons.isEmpty ? "-" : reasons.joined(separator: "; "), dest ?? "-"])
            if matched && winner == nil { winner = [label, dest ?? "-"] }
        }
        var out = rows.isEmpty ? "" : table(["RULE", "MATCHED", "REASONS", "DESTINATION"], rows)
        if let winner {
            out += "=> \(winner[0]) -> \(winner[1])\n"
        } else if let outcome = body["outcome"]?.stringValue, !outcome.isEmpty {
            out += "=> \(outcome)\n"
        } else if let d = destinations(body), !d.isEmpty {
            out += "=> \(d)\n"
        } else {
            out += rows.isEmpty ? "=> no VirtualService on this listener matches the authority (404 NR)\n"
                                : "=> no rule matches (404 NR)\n"
        }
        fputs(out, stdout)
    }

    /// "ns/name" from a string or {namespace, name}.
    static func vsName(_ v: ConfigValue?) -> String? {
        guard let v else { return nil }
        if let s = v.stringValue { return s }
        if let n = (v["name"] ?? v["metadata"]?["name"])?.stringValue {
            let ns = (v["namespace"] ?? v["metadata"]?["namespace"])?.stringValue ?? "default"
            return "\(ns)/\(n)"
        }
        return nil
    }

    /// "#2 name" (the position the server reports, else the position in the list). A name of the
    /// form "ns/vs#name" loses its VirtualService prefix, and "ns/vs#2" says no more than "#2".
    static func ruleLabel(_ e: ConfigValue, position: Int, virtualService: String? = nil) -> String {
        var index = CtlJSON.int(e["index"] ?? e["ruleIndex"])
        var name = e["name"]?.stringValue ?? e["routeName"]?.stringValue
        switch e["rule"] {
        case .int(let i)?: index = index ?? i
        case .string(let s)?: if let i = Int(s) { index = index ?? i } else { name = name ?? s }
        case let o? where CtlJSON.entries(o) != nil:
            index = index ?? CtlJSON.int(o["index"])
            name = name ?? o["name"]?.stringValue
        default: break
        }
        let idx = "#\(index ?? position)"
        if var name {
            if let vs = virtualService, name.hasPrefix(vs + "#") { name.removeFirst(vs.count + 1) }
            if !name.isEmpty && name != String(index ?? position) { return "\(idx) \(name)" }
        }
        return idx
    }

    /// The destination(s) of an explain entry: `destinations`/`destination`/`route`, or the
    /// action for rules that do not forward (redirect, directResponse).
    static func destinations(_ e: ConfigValue) -> String? {
        for key in ["destinations", "destination", "route", "routes", "clusters", "cluster"] {
            guard let v = e[key] else { continue }
            if let a = CtlJSON.array(v) {
                let parts = a.map { destination($0, weighted: a.count > 1) }
                if !parts.isEmpty { return parts.joined(separator: ", ") }
            } else {
                let d = destination(v)
                if !d.isEmpty { return d }
            }
        }
        for key in ["redirect", "directResponse"] {
            if let v = e[key] { return "\(key) \(v.jsonString())" }
        }
        if let a = e["action"]?.stringValue, a != "route" { return a }
        return nil
    }

    /// HOST[:PORT][/SUBSET][ (weight W)] from {host, port(.number), subset, weight} or
    /// {destination: {...}, weight}; a string as it is.
    static func destination(_ v: ConfigValue, weighted: Bool = true) -> String {
        if let s = v.stringValue { return s }
        guard case .object = v else { return CtlJSON.text(v) }
        let d = v["destination"].flatMap { CtlJSON.entries($0) != nil ? $0 : nil } ?? v
        guard let host = d["host"]?.stringValue else {
            if let c = (d["cluster"] ?? d["name"])?.stringValue { return c }
            return v.jsonString()
        }
        var s = host
        if let p = CtlJSON.int(d["port"]) ?? CtlJSON.int(d["port"]?["number"]) { s += ":\(p)" }
        if let sub = d["subset"]?.stringValue, !sub.isEmpty { s += "/\(sub)" }
        if weighted, let w = CtlJSON.int(v["weight"] ?? d["weight"]) { s += " (weight \(w))" }
        return s
    }
}
