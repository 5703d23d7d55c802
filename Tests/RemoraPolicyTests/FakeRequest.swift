import RemoraPolicy

/// A request as the proxy would present it to routing.
struct FakeRequest: RouteRequest {
    var authority: String
    var path: String = "/"
    var method: String = "GET"
    var scheme: String = "http"
    var port: Int = 80
    var headers: [String: String] = [:]

    init(_ authority: String, path: String = "/", method: String = "GET", scheme: String = "http", port: Int = 80,
         headers: [String: String] = [:]) {
        self.authority = authority
        self.path = path
        self.method = method
        self.scheme = scheme
        self.port = port
        // The proxy hands routing lowercase names; tests may write them in any case.
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, b in a + "," + b })
    }

    func header(_ lowercasedName: String) -> String? { headers[lowercasedName] }
}

extension Snapshot {
    /// The route name for a request on the listener at `address:port`, or nil for no route.
    func routeName(_ port: Int, _ req: FakeRequest) -> String? {
        guard let i = listeners.firstIndex(where: { $0.address.port == port }) else { return "no listener \(port)" }
        if case .route(let e) = route(listener: i, req) { return e.name }
        return nil
    }

    /// The destination host a request is sent to (single-destination rules).
    func destinationHost(_ port: Int, _ req: FakeRequest) -> String? {
        guard let i = listeners.firstIndex(where: { $0.address.port == port }) else { return "no listener \(port)" }
        if case .route(let e) = route(listener: i, req) { return clusters[e.pickCluster(random: 0)].host }
        return nil
    }
}
