package testenv

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// HistoryRun is one run of a workflow with its events.
type HistoryRun struct {
	RunID  string
	Events []*historypb.HistoryEvent
}

// historyTimeout bounds each call History makes to the server.
const historyTimeout = time.Minute

// History returns every run of workflowID, oldest first, each with its
// whole event history so far. The runs are found by following the
// continue-as-new chain back from the current run (each run's
// WorkflowExecutionStarted names the run it continues), which needs no
// visibility and so cannot miss a run that visibility has not indexed
// yet; runs that visibility lists outside that chain are added after it.
func History(t testing.TB, c client.Client, workflowID string) []HistoryRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	d, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	require.NoError(t, err, "describe workflow %s", workflowID)

	seen := map[string]bool{}
	var runs []HistoryRun
	// chain reads runID and the runs it continues, newest first.
	chain := func(runID string) []HistoryRun {
		var out []HistoryRun
		for runID != "" && !seen[runID] {
			seen[runID] = true
			run := HistoryRun{RunID: runID, Events: runEvents(ctx, t, c, workflowID, runID)}
			out = append(out, run)
			runID = ""
			if len(run.Events) > 0 {
				if started := run.Events[0].GetWorkflowExecutionStartedEventAttributes(); started != nil {
					runID = started.GetContinuedExecutionRunId()
				}
			}
		}
		slices.Reverse(out)
		return out
	}
	runs = append(runs, chain(d.GetWorkflowExecutionInfo().GetExecution().GetRunId())...)

	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = %q", workflowID), NextPageToken: token,
		})
		require.NoError(t, err, "list the runs of %s", workflowID)
		for _, info := range resp.GetExecutions() {
			runs = append(runs, chain(info.GetExecution().GetRunId())...)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return runs
}

func runEvents(ctx context.Context, t testing.TB, c client.Client, workflowID, runID string) []*historypb.HistoryEvent {
	t.Helper()
	var events []*historypb.HistoryEvent
	iter := c.GetWorkflowHistory(ctx, workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err, "read the history of %s run %s", workflowID, runID)
		events = append(events, ev)
	}
	return events
}

// HistoryText renders everything Temporal keeps about workflowID, for
// scans that must not miss a secret or lead data: every event of every run
// (see History) and each run's description (memo, search attributes,
// pending activities with their heartbeat details and last failures).
//
// Every field of every message is walked generically (protoreflect), so a
// payload is found wherever the API puts one: workflow, activity, signal
// and update inputs and results, markers (side effects, versions), memo,
// search attributes, headers, failure details. Each payload's data is
// written decoded per its encoding (json/*: as text, and every JSON string
// unescaped and, where it is base64 as Go writes a []byte, decoded;
// binary/plain: as text; binary/protobuf: walked as its message type;
// binary/null) and also as the base64 a protojson rendering shows.
// Other bytes fields are written as text and as base64.
//
// A line reads "run RUN event ID TYPE path: value".
func HistoryText(t testing.TB, c client.Client, workflowID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	var r renderer
	for _, run := range History(t, c, workflowID) {
		for _, ev := range run.Events {
			r.prefix = fmt.Sprintf("run %s event %d %s", run.RunID, ev.GetEventId(), ev.GetEventType())
			r.message("", ev.ProtoReflect())
		}
		d, err := c.DescribeWorkflowExecution(ctx, workflowID, run.RunID)
		require.NoError(t, err, "describe %s run %s", workflowID, run.RunID)
		r.prefix = fmt.Sprintf("run %s describe", run.RunID)
		r.message("", d.ProtoReflect())
	}
	return r.sb.String()
}

// renderer writes proto messages as lines of path and value.
type renderer struct {
	sb     strings.Builder
	prefix string
}

const (
	payloadName protoreflect.FullName = "temporal.api.common.v1.Payload"
	anyName     protoreflect.FullName = "google.protobuf.Any"
)

func (r *renderer) line(path, value string) {
	fmt.Fprintf(&r.sb, "%s %s: %s\n", r.prefix, path, value)
}

func join(path string, name protoreflect.Name) string {
	if path == "" {
		return string(name)
	}
	return path + "." + string(name)
}

// message writes every populated field of m, in field-number order, and
// its unknown fields (a newer server's fields this client cannot name may
// still hold payloads).
func (r *renderer) message(path string, m protoreflect.Message) {
	switch m.Descriptor().FullName() {
	case payloadName:
		r.payload(path, m)
		return
	case anyName:
		if a, ok := m.Interface().(*anypb.Any); ok {
			if inner, err := a.UnmarshalNew(); err == nil {
				r.message(path+" (any "+a.GetTypeUrl()+")", inner.ProtoReflect())
			}
		}
	}
	r.fields(path, m, "")
}

// fields writes m's populated fields but skip.
func (r *renderer) fields(path string, m protoreflect.Message, skip protoreflect.Name) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Name() == skip || !m.Has(fd) {
			continue
		}
		r.value(join(path, fd.Name()), fd, m.Get(fd))
	}
	if raw := m.GetUnknown(); len(raw) > 0 {
		r.bytes(join(path, "<unknown fields>"), raw)
	}
}

func (r *renderer) value(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch {
	case fd.IsList():
		l := v.List()
		for i := range l.Len() {
			r.single(fmt.Sprintf("%s[%d]", path, i), fd, l.Get(i))
		}
	case fd.IsMap():
		m := v.Map()
		var keys []protoreflect.MapKey
		m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			// A map key may carry data too (memo and header names).
			r.single(fmt.Sprintf("%s[%s]", path, k.String()), fd.MapValue(), m.Get(k))
		}
	default:
		r.single(path, fd, v)
	}
}

func (r *renderer) single(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		r.message(path, v.Message())
	case protoreflect.BytesKind:
		r.bytes(path, v.Bytes())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			r.line(path, string(ev.Name()))
		} else {
			r.line(path, fmt.Sprint(v.Enum()))
		}
	default:
		r.line(path, v.String())
	}
}

func (r *renderer) bytes(path string, b []byte) {
	r.line(path, strings.ToValidUTF8(string(b), "\uFFFD"))
	r.line(path+" (base64)", base64.StdEncoding.EncodeToString(b))
}

// payload writes a payload's metadata and other fields as any message's,
// and its data decoded per its encoding, then as base64.
func (r *renderer) payload(path string, m protoreflect.Message) {
	r.fields(path, m, "data")
	p, ok := m.Interface().(*commonpb.Payload)
	if !ok {
		// Not the generated type (a dynamic message): convert.
		p = &commonpb.Payload{}
		raw, err := proto.Marshal(m.Interface())
		if err == nil {
			err = proto.Unmarshal(raw, p)
		}
		if err != nil {
			r.bytes(join(path, "data"), nil)
			return
		}
	}
	data, enc := p.GetData(), string(p.GetMetadata()["encoding"])
	path = join(path, "data")
	switch {
	case enc == "binary/null":
		r.line(path+" (binary/null)", "null")
	case strings.HasPrefix(enc, "json/"):
		r.line(path+" ("+enc+")", strings.ToValidUTF8(string(data), "\uFFFD"))
		r.jsonStrings(path, data)
	case enc == "binary/protobuf":
		name := protoreflect.FullName(p.GetMetadata()["messageType"])
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(name); err == nil {
			msg := mt.New()
			if proto.Unmarshal(data, msg.Interface()) == nil {
				r.message(path+" (binary/protobuf "+string(name)+")", msg)
				break
			}
		}
		r.line(path+" ("+enc+")", strings.ToValidUTF8(string(data), "\uFFFD"))
	default:
		// binary/plain and anything unknown: the bytes as text.
		r.line(path+" ("+enc+")", strings.ToValidUTF8(string(data), "\uFFFD"))
	}
	r.line(path+" (base64)", base64.StdEncoding.EncodeToString(data))
}

// jsonStrings writes the strings (keys and values) of a JSON document that
// its text does not show as they are: escaped ones (Go writes <, > and &
// as \u003c...) and base64 (Go's encoding of a []byte), decoded.
func (r *renderer) jsonStrings(path string, data []byte) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		return
	}
	var walk func(v any)
	visit := func(s string) {
		if !strings.Contains(string(data), s) {
			r.line(path+" (json string)", s)
		}
		if decoded, ok := fromBase64(s); ok {
			r.line(path+" (json string, base64-decoded)", decoded)
		}
	}
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			visit(v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			// Sorted, so the same history always renders the same.
			for _, k := range slices.Sorted(maps.Keys(v)) {
				visit(k)
				walk(v[k])
			}
		}
	}
	walk(doc)
}

// fromBase64 decodes s if it is base64 (any of the usual alphabets) of
// UTF-8 text.
func fromBase64(s string) (string, bool) {
	if len(s) < 8 {
		return "", false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && utf8.Valid(b) {
			return string(b), true
		}
	}
	return "", false
}

// RequireAbsent fails t when text (a HistoryText, say) contains s, quoting
// only the lines that do: a history is thousands of lines.
func RequireAbsent(t testing.TB, text, s, what string) {
	t.Helper()
	if lines := linesWith(text, s); len(lines) > 0 {
		t.Fatalf("%s: %q found in %d lines:\n%s", what, s, len(lines), strings.Join(lines, "\n"))
	}
}

// RequirePresent fails t unless text contains s.
func RequirePresent(t testing.TB, text, s, what string) {
	t.Helper()
	if !strings.Contains(text, s) {
		t.Fatalf("%s: %q not found in %d lines", what, s, strings.Count(text, "\n"))
	}
}

// linesWith returns the lines of text that contain s, at most 20.
func linesWith(text, s string) []string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			out = append(out, strings.TrimSuffix(line, "\n"))
			if len(out) == 20 {
				break
			}
		}
	}
	return out
}
