package sockdiag

import "math/bits"

// cookieSet is a set of socket cookies for one kernel batch (a few hundred):
// open addressing in a power-of-two table of plain words. Go's map costs
// three to four times as much per socket here, on every socket of every
// dump, for a set that is emptied three hundred times a dump.
type cookieSet struct {
	slots []uint64 // 0: empty (the kernel's cookies start at 1)
	n     int
	shift uint // 64 - log2(len(slots))
	zero  bool // cookie 0 is held, should a kernel ever send one
}

// minSlots holds a batch (about 300 sockets, inet_diag fills 32 KiB) at
// under half load, in 8 KiB that stay in cache between kernel batches;
// larger batches grow it.
const minSlots = 1024

func (c *cookieSet) slot(k uint64) uint64 {
	// Fibonacci hashing: cookies are a counter, so their high bits say
	// little; the multiply spreads the low ones.
	return (k * 0x9e3779b97f4a7c15) >> c.shift
}

// has reports whether k is in the set.
func (c *cookieSet) has(k uint64) bool {
	if k == 0 {
		return c.zero
	}
	if len(c.slots) == 0 {
		return false
	}
	mask := uint64(len(c.slots) - 1)
	for i := c.slot(k); ; i = (i + 1) & mask {
		switch c.slots[i] {
		case k:
			return true
		case 0:
			return false
		}
	}
}

// add puts k in the set.
func (c *cookieSet) add(k uint64) {
	if k == 0 {
		c.zero = true
		return
	}
	if 2*(c.n+1) > len(c.slots) {
		c.grow()
	}
	mask := uint64(len(c.slots) - 1)
	for i := c.slot(k); ; i = (i + 1) & mask {
		switch c.slots[i] {
		case k:
			return
		case 0:
			c.slots[i] = k
			c.n++
			return
		}
	}
}

func (c *cookieSet) grow() {
	old := c.slots
	c.slots = make([]uint64, max(2*len(old), minSlots))
	c.shift = uint(64 - bits.TrailingZeros(uint(len(c.slots))))
	c.n = 0
	for _, k := range old {
		if k != 0 {
			c.add(k)
		}
	}
}

// reset empties the set, keeping its table.
func (c *cookieSet) reset() {
	if c.n > 0 {
		clear(c.slots)
	}
	c.n, c.zero = 0, false
}
