package exporter

import _ "embed"

// Rules are the alert rules that ship with the exporter (alerts.yml,
// printed by 'sockscope exporter --print-rules'): CLOSE_WAIT growing per
// pod or container, TIME_WAIT near tcp_max_tw_buckets per namespace, and
// closes without a TIME_WAIT entry. testdata/alerts_test.yml is their
// promtool unit test.
//
//go:embed alerts.yml
var Rules []byte
