/// The embedded demo configuration `remora run` serves without -c. It is the text of
/// config/demo.yaml (an end-to-end test checks that the two stay identical).
enum DemoConfig {
    static let yaml = #"""
# The demo `make run` starts (and `remora run` without -c serves), after the
# feature-branch walkthrough (../shared/examples): four echo backends, the mainlines
# `frontend` and `adservice` and their branches `frontend-myfeature` and
# `adservice-myfeature`. At the ingress gateway (:8080) only the browser session named
# in the first rule reaches the frontend branch; on the mesh listener (:15001, where a
# sidecar's outbound traffic arrives) only calls carrying that `userid` reach the
# adservice branch.
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
kind: ServiceEntry
metadata:
  name: adservice
spec:
  hosts: [adservice]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 18083}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: adservice-myfeature
spec:
  hosts: [adservice-myfeature]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 18084}}]
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
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: adservice
spec:
  hosts: [adservice]
  http:
  - name: my-userid-to-branch
    match:
    - headers:
        userid: {exact: 4f9e715d-fe56-4a1e-964b-b00b607e7695}
    route:
    - destination: {host: adservice-myfeature}
  - name: mainline
    route:
    - destination: {host: adservice}
"""#
}
