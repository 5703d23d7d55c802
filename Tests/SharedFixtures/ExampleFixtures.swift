import Foundation

/// The users' example (shared/examples/feature-branch.yaml) for the unit tests of several
/// modules: read from the checkout when it is beside the repository, else this copy of it.
public enum ExampleFixtures {
    public static var featureBranch: String {
        for dir in exampleDirs {
            if let s = try? String(contentsOfFile: dir + "/feature-branch.yaml", encoding: .utf8) { return s }
        }
        return featureBranchCopy
    }

    public static var exampleDirs: [String] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return [root.appendingPathComponent("../shared/examples").standardized.path, "/work/shared/examples"]
    }

    public static let featureBranchCopy = """
    apiVersion: networking.istio.io/v1alpha3
    kind: Gateway
    metadata:
      name: ingressgateway
      namespace: istio-system
    spec:
      selector:
        istio: ingressgateway
      servers:
      - port:
          number: 443
          name: https
          protocol: HTTPS
        tls:
          mode: SIMPLE
          credentialName: octopus.tech
        hosts:
        - "*"
      - port:
          number: 80
          name: http
          protocol: HTTP
        hosts:
        - "*"
    ---
    apiVersion: networking.istio.io/v1beta1
    kind: VirtualService
    metadata:
      name: frontend
    spec:
      gateways:
      - istio-system/ingressgateway
      hosts:
      - '*'
      http:
      - match:
        - headers:
            Cookie:
              exact: shop_session-id=4f9e715d-fe56-4a1e-964b-b00b607e7695
        route:
        - destination:
            host: frontend-myfeature
      - route:
        - destination:
            host: frontend
    ---
    apiVersion: networking.istio.io/v1beta1
    kind: VirtualService
    metadata:
      name: adservice
    spec:
      hosts:
        - adservice
      http:
        - match:
            - headers:
                userid:
                  exact: 4f9e715d-fe56-4a1e-964b-b00b607e7695
          route:
            - destination:
                host: adservice-myfeature
        - route:
            - destination:
                host: adservice
    """
}
