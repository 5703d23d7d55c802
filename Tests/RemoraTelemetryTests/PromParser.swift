/// A tiny Prometheus text-format parser, strict enough to catch rendering mistakes:
/// every sample must belong to a family announced by # HELP and # TYPE, each family is
/// announced once, and label values are unescaped per the exposition format.
struct PromFamily {
    var help = ""
    var type = ""
}

struct PromSample: Equatable {
    var name: String
    var labels: [String: String]
    var value: Double
}

struct PromParseError: Error, CustomStringConvertible {
    var description: String
}

struct PromDocument {
    var families: [String: PromFamily] = [:]
    var samples: [PromSample] = []

    init(_ text: String) throws {
        guard text.hasSuffix("\n") else { throw PromParseError(description: "no final newline") }
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if line.hasPrefix("# HELP ") {
                let rest = line.dropFirst(7)
                guard let sp = rest.firstIndex(of: " ") else { throw PromParseError(description: "bad HELP: \(line)") }
                let name = String(rest[..<sp])
                guard families[name] == nil else { throw PromParseError(description: "family \(name) announced twice") }
                families[name] = PromFamily(help: String(rest[rest.index(after: sp)...]))
                current = name
            } else if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ")
                guard parts.count == 2, String(parts[0]) == current else {
                    throw PromParseError(description: "TYPE without its HELP: \(line)")
                }
                guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(String(parts[1])) else {
                    throw PromParseError(description: "bad type: \(line)")
                }
                families[String(parts[0])]!.type = String(parts[1])
            } else if line.hasPrefix("#") || line.isEmpty {
                throw PromParseError(description: "unexpected line: \(line)")
            } else {
                let s = try PromDocument.parseSample(Substring(line))
                guard let fam = current, s.name == fam || (families[fam]?.type == "histogram" &&
                        [fam + "_bucket", fam + "_sum", fam + "_count"].contains(s.name)) else {
                    throw PromParseError(description: "sample \(s.name) outside its family")
                }
                samples.append(s)
            }
        }
    }

    static func parseSample(_ line: Substring) throws -> PromSample {
        var i = line.startIndex
        while i < line.endIndex, line[i] != "{", line[i] != " " { i = line.index(after: i) }
        let name = String(line[line.startIndex..<i])
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) else {
            throw PromParseError(description: "bad metric name in: \(line)")
        }
        var labels: [String: String] = [:]
        if i < line.endIndex, line[i] == "{" {
            i = line.index(after: i)
            while line[i] != "}" {
                var j = i
                while line[j] != "=" { j = line.index(after: j) }
                let key = String(line[i..<j])
                j = line.index(after: j)
                guard line[j] == "\"" else { throw PromParseError(description: "unquoted label in: \(line)") }
                j = line.index(after: j)
                var value = ""
                while line[j] != "\"" {
                    if line[j] == "\\" {
                        j = line.index(after: j)
                        switch line[j] {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw PromParseError(description: "bad escape in: \(line)")
                        }
                    } else {
                        guard line[j] != "\n" else { throw PromParseError(description: "raw newline") }
                        value.append(line[j])
                    }
                    j = line.index(after: j)
                }
                guard labels[key] == nil else { throw PromParseError(description: "duplicate label \(key)") }
                labels[key] = value
                j = line.index(after: j)
                if line[j] == "," { j = line.index(after: j) }
                i = j
            }
            i = line.index(after: i)
        }
        guard i < line.endIndex, line[i] == " " else { throw PromParseError(description: "no value in: \(line)") }
        let text = line[line.index(after: i)...]
        let value: Double
        switch text {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard let v = Double(text) else { throw PromParseError(description: "bad value in: \(line)") }
            value = v
        }
        return PromSample(name: name, labels: labels, value: value)
    }

    /// Samples of `name` whose labels include `match`.
    func find(_ name: String, _ match: [String: String] = [:]) -> [PromSample] {
        samples.filter { s in s.name == name && match.allSatisfy { s.labels[$0.key] == $0.value } }
    }

    func value(_ name: String, _ match: [String: String] = [:]) -> Double? {
        let found = find(name, match)
        return found.count == 1 ? found[0].value : nil
    }
}
