package sockdiag

import (
	"math/rand/v2"
	"testing"
)

// The cookie set agrees with a map over adds, lookups, growth past its
// first table and resets, for counter-like cookies as the kernel makes
// them, random ones and zero.
func TestCookieSetAgreesWithAMap(t *testing.T) {
	var set cookieSet
	r := rand.New(rand.NewPCG(1, 2))
	for round, n := range []int{10, 300, 5000, 1, 0, 3000} {
		want := map[uint64]bool{}
		base := r.Uint64N(1 << 40)
		for i := range n {
			k := base + uint64(i)
			if i%7 == 0 {
				k = r.Uint64()
			}
			if i == n/2 {
				k = 0
			}
			set.add(k)
			want[k] = true
		}
		for k := range want {
			if !set.has(k) {
				t.Fatalf("round %d: %#x added, not found", round, k)
			}
		}
		for range 10000 {
			k := base + r.Uint64N(uint64(2*n+10))
			if set.has(k) != want[k] {
				t.Fatalf("round %d: has(%#x) = %v, want %v", round, k, set.has(k), want[k])
			}
		}
		if set.n+boolInt(set.zero) != len(want) {
			t.Fatalf("round %d: %d cookies held, want %d", round, set.n+boolInt(set.zero), len(want))
		}
		set.reset()
		for k := range want {
			if set.has(k) {
				t.Fatalf("round %d: %#x found after reset", round, k)
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
