// Package ui is sockscope's live terminal dashboard, built on tview.
//
// # Data flow
//
// A monitor goroutine (package monitor) owns the source and the tracker: on
// every tick it takes a snapshot, folds it into the tracker and leaves an
// immutable Frame in a mailbox. A pump takes it, prepares it (counts it
// and sorts its rows for the view the model published) and moves it onto
// the UI goroutine through tview's update queue, where it is swapped in:
// at a million rows the preparation is a quarter of a second the keys do
// not wait for. The UI never waits on the kernel, and widgets are touched
// only on the UI goroutine.
//
// The package depends on snapshots, filters and the tracker, never on
// netlink: the command passes in the kernel source, tests a scripted one.
//
// # Rows
//
// The table is virtual (a tview.TableContent over the current rows), so only
// the visible rows are formatted at each draw, whatever the table's size.
// Rows are the frame's sockets plus those that vanished in the last few
// seconds, dimmed and marked gone, filtered by the state toggles and sorted.
//
// # Panels
//
// The detail pane, the help and the TIME_WAIT panel are pages over the
// table, each at most a set size and never larger than the screen between
// the header and the status line (panel): on a small terminal the panel
// shrinks, its text wraps and scrolls, and the panel shown last is in front
// with the keys.
package ui
