package console

import (
	"github.com/prometheus/client_golang/prometheus"
)

// keyMetrics reads the few figures the live page shows from the node's
// registry: the applied revision and raft role, gRPC calls and errors, the
// mean call latency, check engine work and cache hits, and memory.
func keyMetrics(g prometheus.Gatherer) map[string]float64 {
	out := map[string]float64{}
	families, err := g.Gather()
	if err != nil && len(families) == 0 {
		return out
	}
	var latSum float64
	var latCount uint64
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "ambit_applied_revision", "ambit_raft_state", "go_goroutines", "process_resident_memory_bytes", "go_memstats_heap_alloc_bytes",
				"ambit_check_dispatches_total", "ambit_check_cache_hits_total", "ambit_check_cache_misses_total":
				out[f.GetName()] += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			case "ambit_grpc_requests_total":
				out["ambit_grpc_requests_total"] += m.GetCounter().GetValue()
				for _, l := range m.GetLabel() {
					if l.GetName() == "code" && l.GetValue() != "OK" {
						out["ambit_grpc_errors_total"] += m.GetCounter().GetValue()
					}
				}
			case "ambit_grpc_request_duration_seconds":
				latSum += m.GetHistogram().GetSampleSum()
				latCount += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if latCount > 0 {
		out["ambit_grpc_mean_latency_seconds"] = latSum / float64(latCount)
	}
	return out
}
