package track

import "testing"

func TestKeyMap(t *testing.T) {
	km := NewKeyMap[int]()
	a1, a2, b1 := Key{Netns: 1, Cookie: 10}, Key{Netns: 1, Cookie: 20}, Key{Netns: 2, Cookie: 10}
	km.Set(a1, 1)
	km.Set(b1, 3) // the same cookie in another namespace is another key
	km.Set(a2, 2)
	km.Set(a2, 22) // replaced, not added
	if km.Len() != 3 {
		t.Fatalf("Len %d, want 3", km.Len())
	}
	for k, want := range map[Key]int{a1: 1, a2: 22, b1: 3} {
		if v, ok := km.Get(k); !ok || v != want {
			t.Errorf("Get(%v) = %d, %v; want %d", k, v, ok, want)
		}
	}
	if _, ok := km.Get(Key{Netns: 3, Cookie: 10}); ok {
		t.Error("a key of an unknown namespace was found")
	}
	seen := 0
	km.All(func(k Key, v int) bool {
		seen++
		if k == a1 {
			km.Delete(k) // allowed while ranging
		}
		return true
	})
	if seen != 3 || km.Len() != 2 {
		t.Errorf("All saw %d, Len after a delete %d; want 3 and 2", seen, km.Len())
	}
	km.Delete(b1)
	km.Delete(b1) // twice: no change
	if _, ok := km.m[2]; ok || km.Len() != 1 {
		t.Errorf("namespace 2 kept after its last key left (Len %d)", km.Len())
	}
	km.Set(b1, 4) // back again, after the cache held its old map
	if v, ok := km.Get(b1); !ok || v != 4 {
		t.Errorf("Get after re-adding: %d, %v", v, ok)
	}
}

// Reserve only sizes: keys set before it are kept, counts stay right.
func TestKeyMapReserve(t *testing.T) {
	km := NewKeyMap[int]()
	km.Set(Key{Netns: 1, Cookie: 1}, 1)
	km.Reserve(1, 1000) // not empty: left as it is
	km.Reserve(2, 1000)
	for c := range uint64(500) {
		km.Set(Key{Netns: 2, Cookie: c}, int(c))
		km.Set(Key{Netns: 2, Cookie: c}, int(c)+1) // again: no new key
	}
	if v, ok := km.Get(Key{Netns: 1, Cookie: 1}); !ok || v != 1 {
		t.Errorf("namespace 1's key after Reserve: %v %v", v, ok)
	}
	if v, ok := km.Get(Key{Netns: 2, Cookie: 499}); !ok || v != 500 {
		t.Errorf("namespace 2's key 499: %v %v", v, ok)
	}
	if km.Len() != 501 {
		t.Errorf("Len %d, want 501", km.Len())
	}
}
