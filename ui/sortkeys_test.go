package ui

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

// The radix sort orders rows as comparing does, below and above its
// threshold, sort after sort in the same room, for keys that share most of
// their digits (state and ports) and for keys spread over all 128 bits.
func TestKeySorterAgreesWithComparing(t *testing.T) {
	byKeys := func(a, b rowKey) int {
		if c := cmp.Compare(a.k1, b.k1); c != 0 {
			return c
		}
		return cmp.Compare(a.k2, b.k2)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var s keySorter
	for _, n := range []int{0, 1, 10, radixFrom - 1, radixFrom, 3 * radixFrom, 50_000, radixFrom} {
		for _, spread := range []bool{false, true} {
			keys := make([]rowKey, n)
			for i := range keys {
				keys[i] = rowKey{uint64(r.IntN(11))<<48 | uint64(20000+r.IntN(60))<<32 | uint64(r.IntN(65536))<<16,
					uint32(i)*7919 + 4096, int32(i)}
				if spread {
					keys[i].k1, keys[i].k2 = r.Uint64(), r.Uint32()
				}
			}
			want := slices.Clone(keys)
			slices.SortFunc(want, byKeys)
			got := s.sort(keys)
			if !slices.Equal(got, want) {
				t.Fatalf("%d keys (spread %v): the radix order differs from comparing", n, spread)
			}
		}
	}
}

// BenchmarkKeySorter sorts a million rows shaped like a busy server's
// table by state: one state, the server's port or an ephemeral one on each
// side, cookies in the kernel's hash order.
func BenchmarkKeySorter(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	const n = 1_000_000
	orig := make([]rowKey, n)
	for i := range orig {
		lport, pport := uint64(9000), uint64(32768+r.IntN(28000))
		if i%2 == 1 {
			lport, pport = pport, lport
		}
		orig[i] = rowKey{uint64(stateRank[1])<<48 | lport<<32 | pport<<16, r.Uint32(), int32(i)}
	}
	var s keySorter
	keys := make([]rowKey, n)
	b.ResetTimer()
	for b.Loop() {
		copy(keys, orig)
		keys = s.sort(keys)
	}
}
