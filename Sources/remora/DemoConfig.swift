/// The embedded demo configuration `remora run` serves without -c. It is the text of
/// config/demo.yaml (an end-to-end test checks that the two stay identical).
enum DemoConfig {
    static let yaml = #"""
# The demo `make run` starts (and `remora run` without -c serves): an ingress gateway
# on :8080 in front of two echo backends, the mainline `frontend` and the feature
# branch `frontend-myfeature`. Only the browser session named in the first rule goes
# to the branch, as in the feature-branch walkthrough (../shared/examples).
apiVersion: remora.dev/v1alpha1
kind: Proxy
metadata:
  name: demo
spec:
  workers: 0
  meshListeners:
    outbound: {address: 127.0.0.1, port: 15001}
  accessLog: {path: stdout}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: ingressgateway
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: frontend
spec:
  hosts: [frontend]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 18081}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: frontend-myfeature
spec:
  hosts: [frontend-myfeature]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 18082}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: frontend
spec:
  gateways: [istio-system/ingressgateway]
  hosts: ["*"]
  http:
  - name: my-session-to-branch
    match:
    - cookies:
        shop_session-id: {exact: 4f9e715d-fe56-4a1e-964b-b00b607e7695}
    route:
    - destination: {host: frontend-myfeature}
  - name: mainline
    route:
    - destination: {host: frontend}
"""#
}
