package sagakey

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestKey(t *testing.T) {
	root := []byte{0: 1, 6: 0x40, 15: 7}
	// The preimage written out by hand: len-prefixed name, domain, root,
	// seq (u32 BE), index (u64 BE).
	pre := append([]byte{12}, "loyalty-earn"...)
	pre = append(pre, 5)
	pre = append(pre, "order"...)
	pre = append(pre, 16)
	pre = append(pre, root...)
	pre = append(pre, 0, 0, 0, 3)
	pre = append(pre, 0, 0, 0, 0, 0, 0, 0, 2)
	sum := sha256.Sum256(pre)
	want := "saga-" + hex.EncodeToString(sum[:])
	if got := Key("loyalty-earn", "order", root, 3, 2); got != want {
		t.Fatalf("Key = %s, want %s", got, want)
	}
	seen := map[string]bool{}
	for _, k := range []string{
		Key("a", "b", root, 0, 0), Key("a", "b", root, 0, 1), Key("a", "b", root, 1, 0),
		Key("ab", "", root, 0, 0), Key("a", "b", nil, 0, 0), Key("b", "a", root, 0, 0),
	} {
		if seen[k] {
			t.Fatalf("collision: %s", k)
		}
		seen[k] = true
	}
}
