package ui

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/prefault"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/sockscope/sockscope/pkg/twstat"
)

// How long a vanished socket stays on screen, and how long a new one is
// highlighted: long enough to notice, short enough not to clutter.
const (
	goneLinger = 3 * time.Second
	newFlash   = 2 * time.Second
)

// row is one line of the table.
type row struct {
	track.Entry
	gone   bool
	goneAt time.Time
}

// sortKey is a column the table can be ordered by.
type sortKey int

const (
	sortState sortKey = iota
	sortAge
	sortLocal
	sortPeer
	numSortKeys
)

var sortNames = [...]string{"state", "age", "local port", "peer"}

// stateRank orders states as people read a server's table: listeners first,
// then connections from opening to closing.
var stateRank = func() [16]int {
	var r [16]int
	order := []sock.State{sock.Listen, sock.SynRecv, sock.SynSent, sock.Established, sock.CloseWait,
		sock.LastAck, sock.FinWait1, sock.FinWait2, sock.Closing, sock.TimeWait, sock.Close}
	for i, s := range order {
		r[s] = i
	}
	return r
}()

// model is the dashboard's state outside tview: pure, so keys and frames
// are tested without drawing.
type model struct {
	frame    *monitor.Frame // the last frame with sockets (errors keep it)
	lastErr  error
	warn     error     // the latest Frame.Warn
	start    time.Time // the first frame's time: sockets seen then predate us
	lingered *track.KeyMap[row]
	gone     []row          // lingered, in a slice rows can point into
	shown    *monitor.Frame // the frame rows point into (older while paused)
	// rows are the visible rows in order: an index into frame.Entries, or
	// -(k+1) for gone[k]. Indices rather than copies: a 100k-socket table
	// is sorted by moving 4-byte refs, not 200-byte entries.
	rows  []int32
	found int // the row index found a socket at last
	// order makes a frame's rows, on the goroutine that hands frames
	// over (the dashboard's) or in apply; room is where rows are sorted.
	order    *orderer
	room     *sortRoom
	pub      published
	toggles  sock.StateMask // states kept by l/t/c/e; 0 keeps all
	netns    uint32         // the one namespace shown (its inode); 0: all
	nMatched int            // sockets the filter matches in the frame, in netns
	sortBy   sortKey
	reverse  bool
	paused   bool
	pausedAt time.Time
	spark    [3][]int // LISTEN, TIME_WAIT, CLOSE_WAIT counts per frame
	counts   [16]int
	tw       *twstat.Stats   // TIME_WAIT lifetimes seen while watching
	twCtx    *twstat.Context // the kernel's side, while the panel is open
	// rates of the counters the status line shows, per second, between
	// the last two frames that had counters
	rates     map[string]float64
	lastCount map[string]int64
	lastTime  time.Time
}

var highlighted = [3]sock.State{sock.Listen, sock.TimeWait, sock.CloseWait}

// rateCounters are the counters whose rates the status line shows: resets
// sent, accept-queue overflows, TIME_WAIT entries not made.
var rateCounters = []string{"OutRsts", "ListenOverflows", "TCPTimeWaitOverflow"}

const sparkLen = 60

func newModel() *model {
	room := &sortRoom{}
	return &model{lingered: track.NewKeyMap[row](), tw: twstat.New(), room: room, order: &orderer{room: room}}
}

// view is what makes a frame's rows: the states kept, the namespace
// shown, the order, and the pause (which keeps the rows as they were).
type view struct {
	toggles sock.StateMask
	netns   uint32
	sortBy  sortKey
	reverse bool
	paused  bool
}

// keep reports whether the view shows an entry.
func (v view) keep(e *track.Entry) bool {
	return (v.toggles == 0 || v.toggles.Has(e.State)) && (v.netns == 0 || e.Netns == v.netns)
}

// key is the place of an entry (row ref) in the view's order.
func (v view) key(e *track.Entry, ref int32) rowKey {
	var k1 uint64
	lport, pport := uint64(e.Local.Port()), uint64(e.Peer.Port())
	switch v.sortBy {
	case sortState:
		k1 = uint64(stateRank[e.State&15])<<48 | lport<<32 | pport<<16
	case sortAge:
		k1 = ^uint64(max(e.Age, 0)) // oldest first
	case sortLocal:
		k1 = lport<<48 | uint64(stateRank[e.State&15])<<32 | pport<<16
	case sortPeer:
		k1 = peerKey(e.Peer.Addr())<<16 | pport
	}
	if v.reverse {
		k1 = ^k1
	}
	return rowKey{k1, uint32(e.Cookie), ref}
}

func compareKeys(a, b rowKey) int {
	if c := cmp.Compare(a.k1, b.k1); c != 0 {
		return c
	}
	return cmp.Compare(a.k2, b.k2)
}

// current is the view the model shows.
func (m *model) current() view {
	return view{toggles: m.toggles, netns: m.netns, sortBy: m.sortBy, reverse: m.reverse, paused: m.paused}
}

// published is the model's view for the goroutine that prepares frames:
// the model's own fields are the drawing goroutine's alone.
type published struct {
	mu sync.Mutex
	v  view
}

func (p *published) set(v view) {
	p.mu.Lock()
	p.v = v
	p.mu.Unlock()
}

func (p *published) get() view {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.v
}

// sortRoom is where rows are sorted, one sort at a time: the frames'
// preparation and the keys' rebuilds share it rather than each holding a
// table's worth of keys (16 MB at a million rows). Nobody holding it
// waits for the drawing goroutine.
type sortRoom struct {
	mu     sync.Mutex
	keys   []rowKey
	sorter keySorter
}

// sortRefs orders row refs by the view, entry giving each ref's entry,
// and returns their keys in that order. The keys are taken out of the
// room: a caller done with them gives them back for the next sort.
func (r *sortRoom) sortRefs(v view, rows []int32, entry func(int32) *track.Entry) []rowKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := prefault.Grow(r.keys[:0], len(rows))
	for _, ref := range rows {
		keys = append(keys, v.key(entry(ref), ref))
	}
	keys = r.sorter.sort(keys)
	for i := range keys {
		rows[i] = keys[i].ref
	}
	r.keys = nil
	return keys
}

// giveBack returns keys taken out by sortRefs.
func (r *sortRoom) giveBack(keys []rowKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cap(keys) > cap(r.keys) {
		r.keys = keys[:0]
	}
}

// prepared is a frame made ready for the table: its counts in the view's
// namespace and, unless the view was paused, its entries' rows in the
// view's order (the gone rows join them in applyPrepared). At a million
// sockets this is a quarter of a second of work, and a key pressed while
// the drawing goroutine did it waited for all of it.
type prepared struct {
	f       *monitor.Frame
	v       view
	counts  [16]int
	matched int
	rows    []int32
	keys    []rowKey // rows' keys, in their order (the sort room's, lent)
	ordered bool     // rows are the view's (not paused, a frame with entries)
}

// orderer prepares frames on any one goroutine at a time; spare is the
// rows buffer the table does not show, handed back by applyPrepared.
type orderer struct {
	room  *sortRoom
	spare []int32
}

func (o *orderer) prepare(f *monitor.Frame, v view) *prepared {
	p := &prepared{f: f, v: v, rows: o.spare[:0]}
	o.spare = nil
	if f.Err != nil && f.Entries == nil {
		return p // the last good frame stays (apply)
	}
	p.counts, p.matched = countOf(f, v.netns)
	if v.paused {
		return p
	}
	// At full size at once: a first frame of 100k rows appended one by
	// one doubled the slice a dozen times, each time into fresh pages.
	rows := prefault.Grow(p.rows, len(f.Entries))
	for i := range f.Entries {
		if v.keep(&f.Entries[i]) {
			rows = append(rows, int32(i))
		}
	}
	p.keys = o.room.sortRefs(v, rows, func(ref int32) *track.Entry { return &f.Entries[ref] })
	p.rows, p.ordered = rows, true
	return p
}

// apply folds a frame in, prepared on the spot.
func (m *model) apply(f *monitor.Frame) {
	m.order.spare = m.applyPrepared(m.order.prepare(f, m.current()))
}

// applyPrepared folds a prepared frame in, and returns the rows buffer
// the table no longer uses, for the next preparation. While paused,
// counts and sparklines still follow the kernel but the rows stay as
// they were.
func (m *model) applyPrepared(p *prepared) (spare []int32) {
	f := p.f
	m.lastErr = f.Err
	if f.Warn != nil {
		m.warn = f.Warn // said once by the monitor: it stays in view
	}
	if f.Err != nil && f.Entries == nil {
		return p.rows // keep the last good frame on screen
	}
	if m.frame == nil {
		m.start = f.Time
	}
	// A lingering gone row leaves after goneLinger, or at once if its
	// socket is back (a filter that matched it again).
	m.lingered.All(func(k track.Key, r row) bool {
		if f.Time.Sub(r.goneAt) > goneLinger {
			m.lingered.Delete(k)
		}
		return true
	})
	if m.lingered.Len() > 0 {
		if f.Refiltered {
			for i := range f.Entries {
				m.lingered.Delete(track.KeyOf(f.Entries[i].Socket))
			}
		} else {
			// The tracker forgets a gone socket: one back in the table
			// is new again, and only the new need looking at (at 110k
			// sockets, a lookup of every entry was 1% of the
			// dashboard's profile).
			for i := range f.Events {
				if e := &f.Events[i]; e.Kind == track.EventNew {
					m.lingered.Delete(track.KeyOf(e.Entry.Socket))
				}
			}
		}
	}
	x := extraOf(f)
	if x.TimeWait != nil {
		m.twCtx = x.TimeWait
	}
	if x.Counters != nil {
		if m.lastCount != nil && f.Time.After(m.lastTime) {
			dt := f.Time.Sub(m.lastTime).Seconds()
			m.rates = map[string]float64{}
			for _, name := range rateCounters {
				m.rates[name] = float64(x.Counters[name]-m.lastCount[name]) / dt
			}
		}
		m.lastCount, m.lastTime = x.Counters, f.Time
	}
	if !f.Refiltered {
		m.tw.Add(f.Events)
		// The tracker reports as gone only what this frame lacks.
		for _, e := range f.Gone {
			m.lingered.Set(track.KeyOf(e.Socket), row{Entry: e, gone: true, goneAt: f.Time})
		}
	}
	if p.v.netns == m.netns {
		m.counts, m.nMatched = p.counts, p.matched
	} else {
		m.count(f) // the namespace changed since
	}
	for i, st := range highlighted {
		m.spark[i] = append(m.spark[i], m.counts[st])
		if len(m.spark[i]) > sparkLen {
			m.spark[i] = m.spark[i][len(m.spark[i])-sparkLen:]
		}
	}
	prev := m.frame
	m.frame = f
	spare = p.rows
	switch {
	case m.paused:
	case p.ordered && p.v == m.current():
		spare = m.install(p)
	default:
		m.room.giveBack(p.keys) // for the rebuild's sort
		p.keys = nil
		m.rebuild() // the view changed while the frame was prepared
	}
	m.room.giveBack(p.keys)
	m.release(prev)
	return spare
}

// install shows a prepared frame's rows, with the lingering gone rows
// the view keeps put in their places, and returns the buffer it does not
// use. The gone rows are few: each is placed by a binary search, where a
// sort of the whole table took a quarter of a second at a million rows.
func (m *model) install(p *prepared) (spare []int32) {
	old := m.shown
	m.shown = m.frame
	m.release(old)
	m.gone = m.gone[:0]
	var gone []rowKey
	m.lingered.All(func(_ track.Key, r row) bool {
		if p.v.keep(&r.Entry) {
			m.gone = append(m.gone, r)
			ref := -int32(len(m.gone))
			gone = append(gone, p.v.key(&r.Entry, ref))
		}
		return true
	})
	if len(gone) == 0 {
		spare, m.rows = m.rows, p.rows
		return spare
	}
	slices.SortFunc(gone, compareKeys)
	rows := prefault.Grow(m.rows[:0], len(p.rows)+len(gone))
	at := 0
	for _, g := range gone {
		// After the entries that sort with it or before: where a stable
		// sort of the entries, then the gone rows, puts it (rebuild).
		// The entries' keys are searched, not made again from entries
		// spread over the heap: that was a third of a frame's ordering.
		n, _ := slices.BinarySearchFunc(p.keys[at:], g, func(k, g rowKey) int {
			if compareKeys(k, g) <= 0 {
				return -1
			}
			return 1
		})
		rows = append(append(rows, p.rows[at:at+n]...), g.ref)
		at += n
	}
	m.rows = append(rows, p.rows[at:]...)
	return p.rows
}

// count counts the frame's sockets by state, in the namespace shown.
func (m *model) count(f *monitor.Frame) {
	m.counts, m.nMatched = countOf(f, m.netns)
}

// countOf counts a frame's sockets by state, in one namespace (0: all).
func countOf(f *monitor.Frame, netns uint32) (counts [16]int, matched int) {
	for i := range f.Entries {
		if netns == 0 || f.Entries[i].Netns == netns {
			counts[f.Entries[i].State&15]++
			matched++
		}
	}
	// The namespaces the source counted rather than dumped.
	for ino, c := range f.Counted {
		if netns == 0 || ino == netns {
			for st, n := range c {
				counts[st] += n
				matched += n
			}
		}
	}
	return counts, matched
}

// setNetns shows one namespace's sockets (its inode), or all (0). The
// counts follow at once; the sparklines start again.
func (m *model) setNetns(ino uint32) {
	if m.netns == ino {
		return
	}
	m.netns = ino
	m.spark = [3][]int{}
	if m.frame != nil {
		m.count(m.frame)
	}
	m.rebuild()
}

// release hands a frame's memory back to the monitor once no row points
// into it.
func (m *model) release(f *monitor.Frame) {
	if f != nil && f != m.frame && f != m.shown {
		f.Release()
	}
}

// rebuild recomputes the visible rows from the frame, toggles and sort,
// and publishes the view for the frames prepared next.
func (m *model) rebuild() {
	v := m.current()
	m.pub.set(v)
	m.rows = m.rows[:0]
	m.gone = m.gone[:0]
	if !m.paused || m.shown == nil {
		old := m.shown
		m.shown = m.frame // while paused, sorting and toggles keep the frozen frame
		m.release(old)
	}
	if m.shown == nil {
		return
	}
	m.rows = prefault.Grow(m.rows, len(m.shown.Entries)+m.lingered.Len())
	for i := range m.shown.Entries {
		if v.keep(&m.shown.Entries[i]) {
			m.rows = append(m.rows, int32(i))
		}
	}
	m.lingered.All(func(_ track.Key, r row) bool {
		if v.keep(&r.Entry) {
			m.gone = append(m.gone, r)
			m.rows = append(m.rows, -int32(len(m.gone)))
		}
		return true
	})
	m.room.giveBack(m.room.sortRefs(v, m.rows, m.entry))
}

// rowKey packs the order of a row into two integers, so that sorting a
// 100k-row table compares numbers held together in one slice rather than
// chasing two 200-byte entries per comparison. The second key (the
// cookie) breaks every tie: the order is the same on every frame.
type rowKey struct {
	k1 uint64
	// k2 breaks ties: the cookie's low 32 bits, which tell apart the
	// sockets of one table (a cookie is a counter). 16 bytes a key, not
	// 24: two sorts' room at 110k rows is 1.7 MB less, and the radix
	// passes move a third less.
	k2  uint32
	ref int32
}

// peerKey orders addresses by their first 48 bits (IPv4 first): enough to
// group peers, exact for IPv4.
func peerKey(a netip.Addr) uint64 {
	if a.Is4() {
		b := a.As4()
		return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	}
	b := a.As16()
	return 1<<47 | (uint64(b[0])<<40|uint64(b[1])<<32|uint64(b[2])<<24|uint64(b[3])<<16|uint64(b[4])<<8|uint64(b[5]))&(1<<47-1)
}

// entry returns the entry a row ref points to.
func (m *model) entry(ref int32) *track.Entry {
	if ref < 0 {
		return &m.gone[-ref-1].Entry
	}
	return &m.shown.Entries[ref]
}

// at returns visible row i.
func (m *model) at(i int) row {
	if ref := m.rows[i]; ref < 0 {
		return m.gone[-ref-1]
	}
	return row{Entry: m.shown.Entries[m.rows[i]]}
}

// toggle adds or removes a state from the view; toggling the last one off
// shows every state again.
func (m *model) toggle(s sock.State) {
	m.toggles ^= sock.MaskOf(s)
	m.rebuild()
}

func (m *model) showAll() {
	m.toggles = 0
	m.rebuild()
}

func (m *model) cycleSort() {
	m.sortBy = (m.sortBy + 1) % numSortKeys
	m.rebuild()
}

func (m *model) flipSort() {
	m.reverse = !m.reverse
	m.rebuild()
}

func (m *model) togglePause(now time.Time) {
	m.paused = !m.paused
	m.pausedAt = now
	if m.paused {
		m.pub.set(m.current())
	} else {
		m.rebuild()
	}
}

// index returns the row of a socket, -1 when it is not shown. It looks
// outwards from the row it found one at last: the selection is looked up
// after each frame, where it has moved a few rows if at all, and at a
// million rows a search from the top took up to 100 ms of the keyboard's
// goroutine. The zero key (nothing selected yet) is no socket's: a
// socket's namespace inode is never 0.
func (m *model) index(k track.Key) int {
	if k == (track.Key{}) || len(m.rows) == 0 {
		return -1
	}
	at := func(i int) bool { return track.KeyOf(m.entry(m.rows[i]).Socket) == k }
	from := min(m.found, len(m.rows)-1)
	for d := 0; from-d >= 0 || from+d < len(m.rows); d++ {
		if i := from + d; i < len(m.rows) && at(i) {
			m.found = i
			return i
		}
		if i := from - d; d > 0 && i >= 0 && at(i) {
			m.found = i
			return i
		}
	}
	return -1
}

// matched is the number of sockets the filter matches in the frame.
func (m *model) matched() int { return m.nMatched }

// isNew reports whether a row appeared in the last moments, after the
// dashboard started.
func (m *model) isNew(r *row, now time.Time) bool {
	return !r.gone && r.FirstSeen().After(m.start) && now.Sub(r.FirstSeen()) < newFlash
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last width values, scaled to their maximum.
func sparkline(vals []int, width int) string {
	if width <= 0 {
		return ""
	}
	if len(vals) > width {
		vals = vals[len(vals)-width:]
	}
	peak := 0
	for _, v := range vals {
		peak = max(peak, v)
	}
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if peak > 0 {
			i = v * (len(sparkRunes) - 1) / peak
		}
		b.WriteRune(sparkRunes[i])
	}
	return b.String()
}
