package roots

import (
	"testing"

	"github.com/google/uuid"
)

func TestNamespaceIsDerivedFromItsURL(t *testing.T) {
	want := uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/angzarr-mesh/angzarr/examples"))
	if Namespace != want {
		t.Fatalf("Namespace = %v, want %v", Namespace, want)
	}
}

func TestOfIsStableVersion5(t *testing.T) {
	a, b := Of("sku-1"), Of("sku-1")
	if a != b || a.Version() != 5 || a == Of("sku-2") {
		t.Fatalf("Of not a stable UUIDv5: %v %v %v", a, b, Of("sku-2"))
	}
}

func TestParse(t *testing.T) {
	id := uuid.New()
	if Parse(id.String()) != id {
		t.Fatal("Parse of a UUID must return it")
	}
	if Parse("cust-1") != Of("cust-1") {
		t.Fatal("Parse of a non-UUID must derive it")
	}
}
