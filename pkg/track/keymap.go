package track

// KeyMap is a map by Key kept as one map of cookies per namespace. A
// struct key would take Go's generic map path (hashing and comparing 16
// bytes) for each of a 100k-socket table's lookups every poll, a sixth of
// a live dashboard's CPU; a uint64 key takes the fast one. Sockets of one
// namespace come together in a snapshot, so the namespace's map is looked
// up once per run of them (the last one is kept).
//
// The zero KeyMap is not ready: use NewKeyMap. A KeyMap is NOT safe for
// concurrent use.
type KeyMap[V any] struct {
	m      map[uint32]map[uint64]V
	n      int
	lastNS uint32
	last   map[uint64]V // m[lastNS], or nil
}

// NewKeyMap returns an empty KeyMap.
func NewKeyMap[V any]() *KeyMap[V] { return &KeyMap[V]{m: map[uint32]map[uint64]V{}} }

// inner returns the namespace's map; with create, making it if need be.
func (km *KeyMap[V]) inner(ns uint32, create bool) map[uint64]V {
	if km.last != nil && km.lastNS == ns {
		return km.last
	}
	in := km.m[ns]
	if in == nil {
		if !create {
			return nil
		}
		in = make(map[uint64]V, 64)
		km.m[ns] = in
	}
	km.lastNS, km.last = ns, in
	return in
}

// Get returns the value of k and whether there is one.
func (km *KeyMap[V]) Get(k Key) (V, bool) {
	v, ok := km.inner(k.Netns, false)[k.Cookie] // a nil map reads as empty
	return v, ok
}

// Set sets the value of k.
func (km *KeyMap[V]) Set(k Key, v V) {
	in := km.inner(k.Netns, true)
	n := len(in)
	in[k.Cookie] = v // one hash and probe, where a lookup first made two
	km.n += len(in) - n
}

// Reserve makes room for n keys of namespace ns, so that filling an empty
// map with a million sockets does not rehash it twenty times over.
func (km *KeyMap[V]) Reserve(ns uint32, n int) {
	if in := km.m[ns]; len(in) > 0 || n <= 64 {
		return
	}
	in := make(map[uint64]V, n)
	km.m[ns] = in
	if km.lastNS == ns {
		km.last = in
	}
}

// Delete removes k.
func (km *KeyMap[V]) Delete(k Key) {
	in := km.inner(k.Netns, false)
	if in == nil {
		return
	}
	if _, ok := in[k.Cookie]; ok {
		km.n--
		delete(in, k.Cookie)
	}
	if len(in) == 0 {
		// A namespace that is gone leaves nothing behind.
		delete(km.m, k.Netns)
		if km.lastNS == k.Netns {
			km.last = nil
		}
	}
}

// Len returns how many keys are held.
func (km *KeyMap[V]) Len() int { return km.n }

// All calls f for every key and value until f returns false. f may Delete
// the key it was given (Go allows deleting from a map being ranged).
func (km *KeyMap[V]) All(f func(Key, V) bool) {
	for ns, in := range km.m {
		for c, v := range in {
			if !f(Key{Netns: ns, Cookie: c}, v) {
				return
			}
		}
	}
}
