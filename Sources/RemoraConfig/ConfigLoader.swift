import Foundation
import Yams

public enum ConfigLoader {
    /// Files or directories (all *.yaml, *.yml, *.json inside, sorted, not recursive), multi-document (`---`),
    /// JSON or YAML, `kind: List` with `items`. Decodes AND validates; throws every error found at once.
    public static func load(paths: [String]) throws(ConfigErrors) -> ConfigSet {
        var errors: [ConfigError] = []
        var resources: [Resource] = []
        for file in expand(paths: paths, errors: &errors) {
            guard let data = FileManager.default.contents(atPath: file) else {
                errors.append(ConfigError(kind: .unreadable, file: file, message: "cannot read file"))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                errors.append(ConfigError(kind: .invalid, file: file, message: "file is not valid UTF-8"))
                continue
            }
            decodeDocuments(text, source: file, into: &resources, errors: &errors)
        }
        return try finish(resources, errors)
    }

    public static func parse(_ text: String, source: String) throws(ConfigErrors) -> ConfigSet {
        var errors: [ConfigError] = []
        var resources: [Resource] = []
        decodeDocuments(text, source: source, into: &resources, errors: &errors)
        return try finish(resources, errors)
    }

    /// Decodes and checks each resource on its own, without the cross-resource rules, so the admin
    /// API can merge one resource into the running set and then call `ConfigSet.validated`.
    public static func decode(_ text: String, source: String) throws(ConfigErrors) -> [Resource] {
        var errors: [ConfigError] = []
        var resources: [Resource] = []
        decodeDocuments(text, source: source, into: &resources, errors: &errors)
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return resources
    }

    private static func finish(_ resources: [Resource], _ errors: [ConfigError]) throws(ConfigErrors) -> ConfigSet {
        var errors = errors
        errors += Validation.crossResource(resources)
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return ConfigSet(validatedResources: resources)
    }

    /// Files in the order they will be read: each path as given; a directory contributes its
    /// *.yaml, *.yml and *.json files, sorted by name, without recursing.
    static func expand(paths: [String], errors: inout [ConfigError]) -> [String] {
        var files: [String] = []
        let fm = FileManager.default
        for path in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
                errors.append(ConfigError(kind: .unreadable, file: path, message: "no such file or directory"))
                continue
            }
            if isDir.boolValue {
                guard let names = try? fm.contentsOfDirectory(atPath: path) else {
                    errors.append(ConfigError(kind: .unreadable, file: path, message: "cannot read directory"))
                    continue
                }
                for name in names.sorted() where !name.hasPrefix(".") {
                    let lower = name.lowercased()
                    guard lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") || lower.hasSuffix(".json") else { continue }
                    let full = (path as NSString).appendingPathComponent(name)
                    var sub: ObjCBool = false
                    if fm.fileExists(atPath: full, isDirectory: &sub), !sub.boolValue { files.append(full) }
                }
            } else {
                files.append(path)
            }
        }
        return files
    }

    /// Every document of one text (YAML is a superset of JSON, so one parser serves both).
    static func decodeDocuments(_ text: String, source: String, into resources: inout [Resource], errors: inout [ConfigError]) {
        var docs: [YNode] = []
        do {
            var seq = try Yams.compose_all(yaml: text)
            while let node = seq.next() {
                docs.append(try YNode.from(node))
            }
            if let e = seq.error { throw e }
        } catch let e as YAMLTreeError {
            errors.append(ConfigError(kind: .invalid, file: source, message: "line \(e.line): \(e.message)"))
            return
        } catch {
            errors.append(ConfigError(kind: .invalid, file: source, message: yamlMessage(error)))
            return
        }
        for (i, doc) in docs.enumerated() {
            if case .null = doc { continue }  // empty document, e.g. a leading `---`
            let ctx = DecodeContext(file: source)
            decodeTopLevel(doc, ctx: ctx, docIndex: docs.count > 1 ? i : nil, into: &resources)
            errors += ctx.errors
        }
    }

    private static func decodeTopLevel(_ doc: YNode, ctx: DecodeContext, docIndex: Int?, into resources: inout [Resource]) {
        let where_ = docIndex.map { "document \($0 + 1)" } ?? ""
        guard case .mapping(let entries, _) = doc else {
            ctx.error(where_, "expected a resource (an object with apiVersion and kind), found \(doc.typeName)")
            return
        }
        if case .scalar(let kind, _, _)? = entries.first(where: { $0.key == "kind" })?.value, kind == "List" {
            // kubectl's `kind: List` (from `kubectl get ... -o yaml`): decode each item as a resource.
            let items = entries.first(where: { $0.key == "items" })?.value
            guard case .sequence(let list, _)? = items else {
                if items != nil, case .null = items! { return }
                ctx.error(joinPath(where_, "items"), "expected a list of resources")
                return
            }
            for k in entries.map(\.key) where !["apiVersion", "kind", "items", "metadata"].contains(k) {
                ctx.error(joinPath(where_, k), "unknown field \"\(k)\"")
            }
            for (i, item) in list.enumerated() {
                let itemCtx = DecodeContext(file: ctx.file)
                if case .mapping = item {
                    if let r = decodeResource(item, ctx: itemCtx, source: ctx.file) { resources.append(r) }
                } else {
                    itemCtx.error(joinPath(where_, "items[\(i)]"), "expected a resource, found \(item.typeName)")
                }
                ctx.errors += itemCtx.errors
            }
            return
        }
        if let r = decodeResource(doc, ctx: ctx, source: ctx.file) { resources.append(r) }
    }

    /// One resource document; nil (with errors in ctx) when it is not acceptable.
    static func decodeResource(_ doc: YNode, ctx: DecodeContext, source: String?) -> Resource? {
        guard case .mapping(let entries, _) = doc else { return nil }
        func scalar(_ key: String, in e: [YPair]) -> String? {
            if case .scalar(let s, _, _)? = e.first(where: { $0.key == key })?.value { return s }
            return nil
        }
        let kindName = scalar("kind", in: entries)
        let kind = kindName.flatMap { k in ResourceKind.allCases.first { $0.rawValue == k } }
        // Name the resource in every message, including those about its own header fields.
        var metaEntries: [YPair] = []
        if case .mapping(let m, _)? = entries.first(where: { $0.key == "metadata" })?.value { metaEntries = m }
        let name = scalar("name", in: metaEntries)
        let ns = scalar("namespace", in: metaEntries) ?? "default"
        if let kindName {
            ctx.resource = "\(kindName) \(ns)/\(name ?? "<unnamed>")"
        }

        let body: Resource.Body? = ObjectReader.read(ctx, doc, "") { r in
            let apiVersion = r.string("apiVersion", required: true)
            guard r.string("kind", required: true) != nil else { r.ignore("metadata", "spec", "status"); return nil }
            guard let kind else {
                ctx.error("kind", "unknown kind \"\(kindName ?? "")\" (expected one of \(ResourceKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                r.ignore("metadata", "spec", "status")
                return nil
            }
            if let apiVersion, !kind.apiVersions.contains(apiVersion) {
                ctx.error("apiVersion", "apiVersion \"\(apiVersion)\" is not valid for kind \(kind.rawValue) (expected \(kind.apiVersions.joined(separator: " or ")))")
            }
            r.ignore("status")  // written by controllers, never by users
            let meta = r.object("metadata", required: true, ObjectMeta.decode) ?? ObjectMeta(name: "")
            let av = apiVersion ?? ""
            switch kind {
            case .virtualService:
                let spec = r.object("spec", required: true, VirtualServiceSpec.decode)
                return spec.map { .virtualService(VirtualService(apiVersion: av, metadata: meta, spec: $0)) }
            case .destinationRule:
                let spec = r.object("spec", required: true, DestinationRuleSpec.decode)
                return spec.map { .destinationRule(DestinationRule(apiVersion: av, metadata: meta, spec: $0)) }
            case .gateway:
                let spec = r.object("spec", required: true, GatewaySpec.decode)
                return spec.map { .gateway(Gateway(apiVersion: av, metadata: meta, spec: $0)) }
            case .serviceEntry:
                let spec = r.object("spec", required: true, ServiceEntrySpec.decode)
                return spec.map { .serviceEntry(ServiceEntry(apiVersion: av, metadata: meta, spec: $0)) }
            case .proxy:
                // Every Proxy field has a default, so the spec itself may be omitted.
                let spec = r.object("spec", ProxySpec.decode) ?? ProxySpec()
                return .proxy(ProxyResource(apiVersion: av, metadata: meta, spec: spec))
            }
        } ?? nil
        // A resource with errors is still returned (the load fails anyway) so that references to it
        // from other resources do not produce follow-on errors.
        guard let body else { return nil }
        return Resource(body: body, source: source, raw: doc.configValue.removing("status"))
    }

    private static func yamlMessage(_ error: Error) -> String {
        if let y = error as? YamlError {
            switch y {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                return "YAML syntax error at line \(mark.line), column \(mark.column): \(problem)"
            case .reader(let problem, _, _, _):
                return "cannot read YAML: \(problem)"
            default:
                return "YAML error: \(y)"
            }
        }
        return "YAML error: \(error)"
    }
}
