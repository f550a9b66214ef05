package testenv_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/acme/integrations/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// plantedKey is a search attribute this test binary's dev server knows.
var plantedKey = temporal.NewSearchAttributeKeyKeyword("HistoryTextPlanted")

// planted names every place of a history where the test plants a secret of
// its own; each value is unique to the test.
type planted map[string]string

func plant(places ...string) planted {
	p := planted{}
	for _, place := range places {
		// "<" and "&" are escaped in Go's JSON (\u003c, \u0026): the scan
		// must still see them as they are.
		p[place] = testenv.ID("planted<"+place+">&") + "-secret"
	}
	return p
}

type historyBundle struct {
	ctx     context.Context
	client  client.Client
	queue   string
	secrets planted
}

// headerPropagator writes a planted secret into the header of everything
// the client and the workflow start: the workflow, signals, updates,
// activities.
type headerPropagator struct{ secret string }

func (p headerPropagator) header(w workflow.HeaderWriter) error {
	payload, err := converter.GetDefaultDataConverter().ToPayload(p.secret)
	if err != nil {
		return err
	}
	w.Set("planted-header", payload)
	return nil
}

func (p headerPropagator) Inject(_ context.Context, w workflow.HeaderWriter) error {
	return p.header(w)
}

func (p headerPropagator) InjectFromWorkflow(_ workflow.Context, w workflow.HeaderWriter) error {
	return p.header(w)
}

func (headerPropagator) Extract(ctx context.Context, _ workflow.HeaderReader) (context.Context, error) {
	return ctx, nil
}

func (headerPropagator) ExtractToWorkflow(ctx workflow.Context, _ workflow.HeaderReader) (workflow.Context, error) {
	return ctx, nil
}

// plantInput is the planting workflow's input; Raw travels as base64 inside
// the JSON payload, as Go encodes a []byte.
type plantInput struct {
	Run    int    `json:"run"`
	Secret string `json:"secret"`
	Raw    []byte `json:"raw"`
}

func setupHistory(t *testing.T) *historyBundle {
	t.Helper()
	server := testenv.DevServer(t, temporal.NewSearchAttributes(plantedKey.ValueSet("")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	b := &historyBundle{ctx: ctx, queue: testenv.TaskQueue(t), secrets: plant(
		"workflow-input", "workflow-input-bytes", "memo", "upserted-memo", "search-attribute",
		"header", "side-effect", "version", "activity-input", "activity-result", "failure-details",
		"signal", "update-argument", "update-result", "continue-as-new-input", "workflow-result",
	)}
	c, err := client.NewClientFromExisting(server.Client(), client.Options{
		// The failing activity is planned: keep its error out of the output.
		Logger: testenv.DiscardLogger(), ContextPropagators: []workflow.ContextPropagator{headerPropagator{b.secrets["header"]}},
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	b.client = c

	w := sdkworker.New(c, b.queue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(b.plantingWorkflow, workflow.RegisterOptions{Name: "Planting"})
	w.RegisterActivityWithOptions(func(_ context.Context, in plantInput) ([]byte, error) {
		if in.Secret != b.secrets["activity-input"] {
			return nil, temporal.NewNonRetryableApplicationError("Echo got another input", "Planted", nil)
		}
		return []byte(b.secrets["activity-result"]), nil // binary/plain
	}, activity.RegisterOptions{Name: "Echo"})
	w.RegisterActivityWithOptions(func(context.Context) error {
		return temporal.NewApplicationError("the planted failure", "Planted", b.secrets["failure-details"])
	}, activity.RegisterOptions{Name: "Fail"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return b
}

// plantingWorkflow puts a secret in every place of its history that holds
// a payload, then continues as new (with one more) so the scan has two
// runs to read.
func (b *historyBundle) plantingWorkflow(ctx workflow.Context, in plantInput) (string, error) {
	s := b.secrets
	if in.Run == 1 {
		return s["workflow-result"], nil
	}
	updated := false
	if err := workflow.SetUpdateHandler(ctx, "plant", func(_ workflow.Context, arg string) (string, error) {
		updated = true
		return s["update-result"], nil
	}); err != nil {
		return "", err
	}
	var effect string
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return s["side-effect"] }).Get(&effect); err != nil {
		return "", err
	}
	workflow.GetVersion(ctx, s["version"], workflow.DefaultVersion, 1)
	if err := workflow.UpsertMemo(ctx, map[string]any{"planted": s["upserted-memo"]}); err != nil {
		return "", err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var echoed []byte
	if err := workflow.ExecuteActivity(ctx, "Echo", plantInput{Secret: s["activity-input"]}).Get(ctx, &echoed); err != nil {
		return "", err
	}
	if err := workflow.ExecuteActivity(ctx, "Fail").Get(ctx, nil); err == nil {
		return "", errors.New("the failing activity succeeded")
	}
	var signal string
	workflow.GetSignalChannel(ctx, "plant").Receive(ctx, &signal)
	if err := workflow.Await(ctx, func() bool { return updated && workflow.AllHandlersFinished(ctx) }); err != nil {
		return "", err
	}
	return "", workflow.NewContinueAsNewError(ctx, "Planting", plantInput{Run: 1, Secret: s["continue-as-new-input"]})
}

// TestHistoryTextSeesEveryPayload plants a secret in every kind of payload
// a history holds, across a continue-as-new, and requires HistoryText to
// show each one, while the protojson rendering the secret scans used
// before (every run's events, as the Temporal UI downloads them) shows
// none of them.
func TestHistoryTextSeesEveryPayload(t *testing.T) {
	t.Parallel()
	b := setupHistory(t)
	s := b.secrets
	id := testenv.ID("planting")
	run, err := b.client.ExecuteWorkflow(b.ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: b.queue,
		Memo:                  map[string]any{"planted": s["memo"]},
		TypedSearchAttributes: temporal.NewSearchAttributes(plantedKey.ValueSet(s["search-attribute"])),
	}, "Planting", plantInput{Secret: s["workflow-input"], Raw: []byte(s["workflow-input-bytes"])})
	require.NoError(t, err)
	firstRun := run.GetRunID()
	require.NoError(t, b.client.SignalWorkflow(b.ctx, id, "", "plant", s["signal"]))
	h, err := b.client.UpdateWorkflow(b.ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: "plant", Args: []any{s["update-argument"]}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	require.NoError(t, err)
	var updateResult string
	require.NoError(t, h.Get(b.ctx, &updateResult))
	require.Equal(t, s["update-result"], updateResult)
	var result string
	require.NoError(t, run.Get(b.ctx, &result), "the run follows the continue-as-new to its end")
	require.Equal(t, s["workflow-result"], result)

	runs := testenv.History(t, b.client, id)
	require.Len(t, runs, 2, "both runs")
	require.Equal(t, firstRun, runs[0].RunID, "oldest first")

	text := testenv.HistoryText(t, b.client, id)
	old := protojsonHistory(t, runs)
	for place, secret := range s {
		testenv.RequirePresent(t, text, secret, "HistoryText misses the secret in the "+place)
		require.NotContains(t, old, secret, "the protojson scan sees the %s: this control plants nothing it could miss", place)
	}
}

// protojsonHistory is the scan the tests used before HistoryText: each
// event marshalled with protojson, which writes payload data as base64.
func protojsonHistory(t *testing.T, runs []testenv.HistoryRun) string {
	t.Helper()
	var sb strings.Builder
	for _, run := range runs {
		for _, ev := range run.Events {
			raw, err := protojson.Marshal(ev)
			require.NoError(t, err)
			sb.Write(raw)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// TestHistoryTextDecodesEachEncoding renders payloads of each encoding the
// SDK's default converter writes.
func TestHistoryTextDecodesEachEncoding(t *testing.T) {
	t.Parallel()
	dc := converter.GetDefaultDataConverter()
	for _, tc := range []struct {
		name  string
		value any
		want  []string
	}{
		{"json string with HTML escapes", "a<b>&c", []string{"a<b>&c"}},
		{"json []byte field", struct{ Raw []byte }{[]byte("raw-secret")}, []string{"raw-secret"}},
		{"binary/plain", []byte("plain-secret"), []string{"plain-secret"}},
		{"binary/null", nil, []string{"(binary/null): null"}},
		{"json/protobuf", &commonpb.WorkflowType{Name: "proto-secret"}, []string{"proto-secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := dc.ToPayload(tc.value)
			require.NoError(t, err)
			text := testenv.RenderPayloads(&commonpb.Payloads{Payloads: []*commonpb.Payload{p}})
			for _, want := range tc.want {
				require.Contains(t, text, want)
			}
		})
	}
	// binary/protobuf, which the default converter writes only when asked.
	p, err := converter.NewProtoPayloadConverter().ToPayload(&commonpb.WorkflowType{Name: "binary-proto-secret"})
	require.NoError(t, err)
	require.Equal(t, "binary/protobuf", string(p.Metadata["encoding"]))
	require.Contains(t, testenv.RenderPayloads(&commonpb.Payloads{Payloads: []*commonpb.Payload{p}}), "name: binary-proto-secret")
}
