package controlplane

import (
	"strings"
	"testing"
)

// TestDecodeShop decodes the example topology.
func TestDecodeShop(t *testing.T) {
	top := loadShop(t)
	var names []string
	for _, d := range top.Domains {
		names = append(names, d.Name)
	}
	if got := strings.Join(names, ","); got != "customer,product,cart,inventory,order,fulfillment" {
		t.Errorf("domains %s", got)
	}
	if len(top.Sagas) != 3 || len(top.Projectors) != 1 || !top.Projectors[0].Synchronous {
		t.Errorf("sagas %v, projectors %v", top.Sagas, top.Projectors)
	}
}

// TestDecodeReportsEveryProblem feeds broken topologies and expects every
// problem of each in one error.
func TestDecodeReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "everything wrong at once",
			yaml: `
apiVersion: angzarr.io/v2
kind: Topo
eventSevice: {address: x:1}
eventService: {address: "no-port", timeout: 3s, failureDomain: "Failures!"}
defaults: {maxRetries: -1, maxBodyBytes: -5, snapshotEvery: -1, eventServiceTimeout: -1s}
domains:
  - {name: Order, service: "bad host!", port: 0}
  - {name: cart, service: cart.shop, port: 70000, colour: red}
  - {name: cart, service: cart2.shop, port: 1}
  - {name: a, service: a, port: 1, workloads: [{name: w}]}
  - {name: b, service: b, port: 1, workloads: [{name: w}, {namespace: x}], coordinator: "b-proxy"}
projectors:
  - {name: summary, address: "s:1", domains: [], startPosition: middle}
  - {name: summary, address: "s", domains: [cart, ghost, cart]}
sagas:
  - {name: loyalty, address: "l:1", sources: [ghost], targets: [], compensationFallback: [record-failure, retry]}
processManagers:
  - {name: checkout, address: "c:1", domain: cart, sources: [cart], targets: [ghost], compensationFallback: [undo]}
  - {name: loyalty, address: "c", sources: [], targets: [cart], domain: "Bad!"}
  - {name: other, address: "o:1", sources: [cart], targets: [cart], domain: checkout-flow}
  - {name: again, address: "o:1", sources: [cart], targets: [cart], domain: checkout-flow}
`,
			want: []string{
				"eventSevice: unknown field",
				"eventService.timeout: unknown field",
				"domains[1].colour: unknown field",
				`apiVersion: must be "angzarr.io/v1alpha1", got "angzarr.io/v2"`,
				`kind: must be "Topology", got "Topo"`,
				`eventService.address: "no-port" is not host:port`,
				"defaults.eventServiceTimeout: must not be negative",
				"defaults.maxRetries: must not be negative, got -1",
				"defaults.maxBodyBytes: must not be negative, got -5",
				"defaults.snapshotEvery: must not be negative, got -1",
				`domains[0].name: "Order" is not a valid name`,
				`domains[0].service: "bad host!" is not a valid host name`,
				"domains[0].port: must be 1-65535, got 0",
				"domains[1].port: must be 1-65535, got 70000",
				`domains[2].name: duplicate domain "cart"`,
				`domains[4].workloads[0]: workload w already serves domain "a"`,
				"domains[4].workloads[1].name: required",
				`domains[4].coordinator: "b-proxy" is not host:port`,
				"projectors[0].domains: at least one domain required",
				`projectors[0].startPosition: must be "earliest" or "latest", got "middle"`,
				`projectors[1].name: duplicate subscriber "summary"`,
				`projectors[1].address: "s" is not host:port`,
				`projectors[1].domains[1]: unknown domain "ghost"`,
				`projectors[1].domains[2]: duplicate domain "cart"`,
				`sagas[0].sources[0]: unknown domain "ghost"`,
				"sagas[0].targets: at least one domain required",
				`sagas[0].compensationFallback[1]: must be one of record-failure, dead-letter, escalate, stop, got "retry"`,
				`processManagers[0].targets[0]: unknown domain "ghost"`,
				`processManagers[0].compensationFallback[0]: must be one of record-failure, dead-letter, escalate, stop, got "undo"`,
				`processManagers[0].domain: "cart" is a declared domain`,
				`processManagers[1].name: duplicate subscriber "loyalty"`,
				`processManagers[1].address: "c" is not host:port`,
				"processManagers[1].sources: at least one domain required",
				`processManagers[1].domain: "Bad!" is not a valid name`,
				`processManagers[3].domain: "checkout-flow" is the domain of another process manager`,
				`eventService.failureDomain: "Failures!" is not a valid name`,
			},
		},
		{
			name: "type mismatch and validation together",
			yaml: `
apiVersion: angzarr.io/v1alpha1
kind: Topology
eventService: {address: "es:9090"}
domains:
  - {name: cart, service: cart, port: "fifty"}
sagas:
  - {name: s, address: "s:1", sources: [cart], targets: [nowhere]}
`,
			want: []string{
				"domains.port: cannot be string, want int",
				`sagas[0].targets[0]: unknown domain "nowhere"`,
			},
		},
		{
			name: "failure domain is a declared domain",
			yaml: `
apiVersion: angzarr.io/v1alpha1
kind: Topology
eventService: {address: "es:9090", failureDomain: cart}
domains:
  - {name: cart, service: cart, port: 1}
`,
			want: []string{`eventService.failureDomain: "cart" is a declared domain`},
		},
		{
			name: "upcasters",
			yaml: `
apiVersion: angzarr.io/v1alpha1
kind: Topology
eventService: {address: "es:9090"}
domains:
  - name: product
    service: product
    port: 1
    upcasters:
      - {address: "up", types: [examples.ProductCreated]}
      - {address: "up:1", types: ["not a type", examples.ProductCreated]}
      - {address: "up:2"}
`,
			want: []string{
				`domains[0].upcasters[0].address: "up" is not host:port`,
				`domains[0].upcasters[1].types[0]: "not a type" is not a full message name (package.Message)`,
				"domains[0].upcasters[1].types[1]: examples.ProductCreated is already upcast by another upcaster of the domain",
				"domains[0].upcasters[2].types: required: the stored event types it upcasts",
			},
		},
		{
			name: "event types",
			yaml: `
apiVersion: angzarr.io/v1alpha1
kind: Topology
eventService: {address: "es:9090"}
domains:
  - name: customer
    service: customer
    port: 1
    eventTypes: [examples.CustomerCreated, "type.googleapis.com/examples.X", examples.CustomerCreated, "1.x"]
`,
			want: []string{
				`domains[0].eventTypes[1]: "type.googleapis.com/examples.X" is not a full message name (package.Message)`,
				"domains[0].eventTypes[2]: duplicate type examples.CustomerCreated",
				`domains[0].eventTypes[3]: "1.x" is not a full message name`,
			},
		},
		{
			name: "duplicate key",
			yaml: "apiVersion: angzarr.io/v1alpha1\napiVersion: angzarr.io/v1alpha1\nkind: Topology\n",
			want: []string{`"apiVersion" already set in map`},
		},
		{
			name: "bad duration",
			yaml: "apiVersion: angzarr.io/v1alpha1\nkind: Topology\neventService: {address: 'e:1'}\ndefaults: {businessLogicTimeout: soon}\n",
			want: []string{`invalid duration "soon"`},
		},
		{
			name: "empty",
			yaml: "# nothing\n",
			want: []string{"empty document"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeTopology([]byte(tc.yaml))
			if err == nil {
				t.Fatal("decoded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("error:\n%v", err)
			}
		})
	}
}

// TestMergeWorkloads adds Kubernetes workloads to the file topology.
func TestMergeWorkloads(t *testing.T) {
	shop := loadShop(t)
	merged := mergeWorkloads(shop, []Workload{
		{Namespace: "shop", Name: "order-v2", Domain: "order", Service: "order-v2.shop.svc.cluster.local", Port: 50051},
		{Namespace: "billing", Name: "invoice", Domain: "invoice", Service: "invoice.billing.svc.cluster.local", Port: 9000},
	})
	if err := merged.Validate(); err != nil {
		t.Fatal(err)
	}
	idx := indexWorkloads(merged)
	for _, tc := range []struct{ ns, name, want string }{
		{"shop", "order", "order"},
		{"shop", "order-v2", "order"},
		{"billing", "invoice", "invoice"},
		{"other", "order", ""},
	} {
		if e, _ := idx.lookup(tc.ns, tc.name); e.domain != tc.want {
			t.Errorf("%s/%s: domain %q, want %q", tc.ns, tc.name, e.domain, tc.want)
		}
	}
	if d, _ := shop.domain("order"); len(d.Workloads) != 1 {
		t.Errorf("merge mutated the file topology: %v", d.Workloads)
	}
}
