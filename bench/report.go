package bench

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// benchLatency are lead-to-CRM latency percentiles, in milliseconds.
type benchLatency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	// Samples is how many deliveries the percentiles are over.
	Samples int `json:"samples"`
}

// percentiles takes nearest-rank percentiles of sorted durations.
func percentiles(sorted []time.Duration) benchLatency {
	if len(sorted) == 0 {
		return benchLatency{}
	}
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return ms(sorted[min(max(i, 0), len(sorted)-1)])
	}
	return benchLatency{P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(sorted[len(sorted)-1]), Samples: len(sorted)}
}

func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// benchReport is what the benchmark prints; its JSON is --output json.
type benchReport struct {
	// Mode is "stack" (the benchmark's own) or "attach" (a running dev).
	Mode             string `json:"mode"`
	Database         string `json:"database"`
	LeadIntegrations int    `json:"lead_integrations"`
	CRMIntegrations  int    `json:"crm_integrations"`
	Concurrency      int    `json:"concurrency"`
	// CRMLatencyMS is the latency every sandbox contacts call was given.
	CRMLatencyMS int64 `json:"crm_latency_ms"`

	IntakeSeconds float64  `json:"intake_seconds"`
	Accepted      int64    `json:"accepted"`
	Duplicates    int64    `json:"duplicates"`
	Errors        int64    `json:"errors"`
	FirstErrors   []string `json:"first_errors,omitempty"`
	// IntakeRate is accepted leads per second of load.
	IntakeRate float64 `json:"intake_rate"`

	// DeliveriesTotal is accepted × CRM integrations: what must reach
	// the CRMs; DeliveriesCompleted is what did.
	DeliveriesTotal     int64 `json:"deliveries_total"`
	DeliveriesCompleted int64 `json:"deliveries_completed"`
	Pending             int64 `json:"pending"`
	// DeliveredRate is completed deliveries per second from the first
	// intake request to the last completion.
	DeliveredRate float64 `json:"delivered_rate"`
	Drained       bool    `json:"drained"`
	// DrainSeconds is from intake stopping to the last completion (to
	// the timeout when not drained).
	DrainSeconds float64      `json:"drain_seconds"`
	Latency      benchLatency `json:"latency_ms"`
	// WorkerPeakRSSBytes is null when the worker is not a child process
	// of the benchmark (--attach).
	WorkerPeakRSSBytes *int64 `json:"worker_peak_rss_bytes"`

	RawCapacity    float64 `json:"raw_capacity"`
	RawRecords     int64   `json:"raw_records"`
	RawSeconds     float64 `json:"raw_seconds"`
	RawPushers     int     `json:"raw_pushers"`
	RawError       string  `json:"raw_error,omitempty"`
	DeliveredOfRaw float64 `json:"delivered_of_raw_percent"`

	// Backlog*: leads posted while the CRMs were paused, then drained
	// after resume. BacklogSeconds is from resume to the last completion,
	// BacklogStartSeconds the part of it before the first (the resume's
	// validation); BacklogDrainRate is deliveries over BacklogSeconds.
	// BacklogRate, the delivery capacity, is deliveries per second from
	// the first completion to the last; BacklogOfRaw compares it with the
	// raw capacity.
	BacklogDeliveries   int64   `json:"backlog_deliveries"`
	BacklogSeconds      float64 `json:"backlog_seconds"`
	BacklogStartSeconds float64 `json:"backlog_start_seconds"`
	BacklogDrained      bool    `json:"backlog_drained"`
	BacklogDrainRate    float64 `json:"backlog_drain_rate"`
	BacklogRate         float64 `json:"backlog_rate"`
	BacklogOfRaw        float64 `json:"backlog_of_raw_percent"`
	// BacklogCPUMicros and RawCPUMicros are the machine's CPU time (every
	// process) per delivery while the backlog drained and per record
	// while the raw capacity was measured: while both saturate the
	// processors, their ratio bounds BacklogOfRaw.
	BacklogCPUMicros float64 `json:"backlog_cpu_us_per_delivery,omitempty"`
	// BacklogCPUBusy and RawCPUBusy are how busy the processors were
	// meanwhile (percent of all processors' time).
	BacklogCPUBusy float64 `json:"backlog_cpu_busy_percent,omitempty"`
	RawCPUBusy     float64 `json:"raw_cpu_busy_percent,omitempty"`
	// BacklogCPUSeconds is each part's CPU time while the backlog drained.
	BacklogCPUSeconds map[string]float64 `json:"backlog_cpu_seconds,omitempty"`
	RawCPUMicros      float64            `json:"raw_cpu_us_per_record,omitempty"`

	// CPUSeconds is the CPU time each part of the stack used from the
	// start of the load until the backlog drained; "machine" is every
	// process's, out of CPUAvailableSeconds (processors × that time).
	CPUSeconds          map[string]float64 `json:"cpu_seconds,omitempty"`
	CPUAvailableSeconds float64            `json:"cpu_available_seconds,omitempty"`
}

func (r *benchReport) setIntake(load intakeLoad) {
	secs := load.end.Sub(load.start).Seconds()
	r.IntakeSeconds = round2(secs)
	r.Accepted, r.Duplicates, r.Errors, r.FirstErrors = load.accepted, load.duplicates, load.errors, load.firstErrors
	if secs > 0 {
		r.IntakeRate = round2(float64(load.accepted) / secs)
	}
}

func (r *benchReport) setDelivery(d benchDrain, load intakeLoad, perLead int64) {
	r.DeliveriesTotal = load.accepted * perLead
	r.DeliveriesCompleted, r.Pending, r.Drained = d.completed, d.pending, d.drained
	if !d.lastCompletion.IsZero() {
		if span := d.lastCompletion.Sub(load.start).Seconds(); span > 0 {
			r.DeliveredRate = round2(float64(d.completed) / span)
		}
	}
	switch {
	case !d.drained:
		r.DrainSeconds = round2(d.waited.Seconds())
	case !d.lastCompletion.IsZero():
		r.DrainSeconds = round2(max(0, d.lastCompletion.Sub(load.end).Seconds()))
	}
}

func (r *benchReport) setRaw(raw benchRaw) {
	r.RawRecords, r.RawSeconds, r.RawPushers = raw.records, round2(raw.elapsed.Seconds()), r.CRMIntegrations
	if raw.elapsed > 0 {
		r.RawCapacity = round2(float64(raw.records) / raw.elapsed.Seconds())
	}
	if raw.records > 0 && raw.busy > 0 {
		r.RawCPUMicros = round2(float64(raw.busy.Microseconds()) / float64(raw.records))
		r.RawCPUBusy = busyPercent(raw.busy, raw.elapsed)
	}
	if raw.err != nil {
		r.RawError = raw.err.Error()
	}
	if r.RawCapacity > 0 {
		r.DeliveredOfRaw = round2(100 * r.DeliveredRate / r.RawCapacity)
		r.BacklogOfRaw = round2(100 * r.BacklogRate / r.RawCapacity)
	}
}

func (r *benchReport) setBacklog(b benchBacklog) {
	r.BacklogDeliveries, r.BacklogDrained = b.deliveries, b.drained
	r.BacklogSeconds, r.BacklogStartSeconds = round2(b.drain.Seconds()), round2(b.start.Seconds())
	if b.drain > 0 {
		r.BacklogDrainRate = round2(float64(b.deliveries) / b.drain.Seconds())
	}
	if b.steadyPeriod > 0 {
		r.BacklogRate = round2(float64(b.steady) / b.steadyPeriod.Seconds())
	}
	if b.deliveries > 0 && b.busy > 0 {
		r.BacklogCPUMicros = round2(float64(b.busy.Microseconds()) / float64(b.deliveries))
		r.BacklogCPUBusy = busyPercent(b.busy, b.busyWall)
	}
	if len(b.cpu) > 0 {
		r.BacklogCPUSeconds = b.cpu
	}
}

// saturatedPercent is how busy the processors must be for a phase to count
// as CPU-bound. The drain's share includes the resume's validation before
// the first delivery and the last poll after the last, mostly waiting.
const saturatedPercent = 75

// busyPercent is busy CPU time as a share of all processors' time in wall.
func busyPercent(busy, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return round2(100 * busy.Seconds() / (wall.Seconds() * float64(runtime.NumCPU())))
}

// cpuParts formats CPU seconds per part of the stack, in a fixed order.
func cpuParts(seconds map[string]float64, format string) string {
	var parts []string
	for _, part := range []string{"worker", "serve", "temporal", "postgres", "bench", "machine"} {
		if s, ok := seconds[part]; ok {
			parts = append(parts, fmt.Sprintf("%s "+format, part, s))
		}
	}
	return strings.Join(parts, "  ")
}

// printText prints the report as a table.
func (r *benchReport) printText(w io.Writer) {
	mode := "own stack"
	if r.Mode == "attach" {
		mode = "attached to integrations dev"
	}
	latency := ""
	if r.CRMLatencyMS > 0 {
		latency = fmt.Sprintf(", CRM calls take %dms", r.CRMLatencyMS)
	}
	fmt.Fprintf(w, "integrations bench: %d lead and %d CRM integrations, %d senders, %s, %s%s\n\n",
		r.LeadIntegrations, r.CRMIntegrations, r.Concurrency, r.Database, mode, latency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "intake rate\t%.1f leads/s\t%d accepted in %.1fs, %d errors, %d duplicates\n", r.IntakeRate, r.Accepted, r.IntakeSeconds, r.Errors, r.Duplicates)
	fmt.Fprintf(tw, "deliveries\t%d of %d\taccepted × %d CRM integrations; %d pending\n", r.DeliveriesCompleted, r.DeliveriesTotal, r.CRMIntegrations, r.Pending)
	fmt.Fprintf(tw, "delivered rate\t%.1f deliveries/s\tfirst intake → last delivery\n", r.DeliveredRate)
	drain := fmt.Sprintf("%.2fs", r.DrainSeconds)
	note := "after intake stopped"
	if !r.Drained {
		note = fmt.Sprintf("NOT drained: %d still pending after the %s timeout", r.Pending, benchDrainTimeout)
	}
	fmt.Fprintf(tw, "drain time\t%s\t%s\n", drain, note)
	fmt.Fprintf(tw, "lead-to-CRM latency\tp50 %.0fms  p95 %.0fms  p99 %.0fms  max %.0fms\tover %d deliveries\n", r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max, r.Latency.Samples)
	rss := "n/a"
	if r.WorkerPeakRSSBytes != nil {
		rss = fmt.Sprintf("%.1f MiB", float64(*r.WorkerPeakRSSBytes)/(1<<20))
	}
	fmt.Fprintf(tw, "worker peak RSS\t%s\tVmHWM of `integrations worker`\n", rss)
	fmt.Fprintf(tw, "sandbox raw capacity\t%.1f records/s\t%d records in %.1fs, one pusher per CRM account (%d), straight through the connector\n", r.RawCapacity, r.RawRecords, r.RawSeconds, r.RawPushers)
	fmt.Fprintf(tw, "delivered / raw\t%.1f%%\tdelivered rate as a share of the raw capacity (bound by intake: delivery keeps pace)\n", r.DeliveredOfRaw)
	fmt.Fprintf(tw, "backlog drain\t%.1f deliveries/s\t%d deliveries queued while the CRMs were paused, drained in %.2fs after resume (%.1f/s), the first after %.2fs\n",
		r.BacklogRate, r.BacklogDeliveries, r.BacklogSeconds, r.BacklogDrainRate, r.BacklogStartSeconds)
	fmt.Fprintf(tw, "backlog / raw\t%.1f%%\tdelivery capacity (first to last delivery of the backlog) as a share of the raw capacity\n", r.BacklogOfRaw)
	if r.BacklogCPUMicros > 0 && r.RawCPUMicros > 0 {
		note := fmt.Sprintf("processors %.0f%% busy while draining, %.0f%% while pushing raw: ", r.BacklogCPUBusy, r.RawCPUBusy)
		if r.BacklogCPUBusy >= saturatedPercent && r.RawCPUBusy >= saturatedPercent {
			note += fmt.Sprintf("CPU-bound, so their ratio (%.0f%%) is about as far as backlog / raw can go", 100*r.RawCPUMicros/r.BacklogCPUMicros)
		} else {
			note += "not CPU-bound: waits (the CRM's latency, round trips) set the pace"
		}
		fmt.Fprintf(tw, "CPU per record\tdelivery %.1fµs  raw %.1fµs\tthe machine's CPU per delivery of the backlog and per raw push; %s\n", r.BacklogCPUMicros, r.RawCPUMicros, note)
	}
	if len(r.BacklogCPUSeconds) > 0 {
		fmt.Fprintf(tw, "backlog CPU seconds\t%s\twhile the backlog drained (bench = the sandbox CRM)\n", cpuParts(r.BacklogCPUSeconds, "%.2f"))
	}
	if len(r.CPUSeconds) > 0 {
		fmt.Fprintf(tw, "CPU seconds\t%s\tduring load + drain, of %.1f available\n", cpuParts(r.CPUSeconds, "%.1f"), r.CPUAvailableSeconds)
	}
	_ = tw.Flush()
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "  intake error: %s\n", e)
	}
	if r.RawError != "" {
		fmt.Fprintf(w, "  raw push error: %s\n", r.RawError)
	}
}
