/// What routing needs to know about a request; the proxy adapts its own request type to it.
public protocol RouteRequest {
    /// As sent, may include ":port".
    var authority: String { get }
    /// Request-target path with query.
    var path: String { get }
    var method: String { get }
    /// "http"/"https"
    var scheme: String { get }
    /// The listener port.
    var port: Int { get }
    /// nil if absent; repeated values joined with ",".
    func header(_ lowercasedName: String) -> String?
}

extension RouteRequest {
    /// Header lookup that also answers HTTP/2 pseudo-header names, so a `headers` match on
    /// ":authority" or ":path" works as it does in Istio.
    func routeHeader(_ name: String) -> String? {
        if name.hasPrefix(":") {
            switch name {
            case ":authority": return authority
            case ":path": return path
            case ":method": return method
            case ":scheme": return scheme
            default: return nil
            }
        }
        return header(name)
    }
}
