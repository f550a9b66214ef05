// Package starter holds the client-side operations on integration
// workflows that the CLI and the HTTP API share: create, commands,
// authorize, leads, and reads of the projection and of the live workflow.
// Every command is sent as an update, so it returns once its effect is in
// the database (read-your-writes) or fails at once with the reason.
//
// # Names of leads
//
// Intake stores a lead's whole name and its parts, for CRMs that keep a
// first and a last name (a Salesforce Lead needs LastName). When the
// partner sends first_name or last_name, they are stored as sent and the
// name is not split; the name, when the partner sent none, is the parts
// joined. When it sends only name, integration.SplitName splits it the way
// a CRM user reads a name:
//   - spaces (any Unicode space, however many) separate words;
//   - "Lovelace, Ada" (one comma) is last name, then first name;
//   - otherwise the last word is the last name, with the lower-case
//     particles before it and a generational suffix after it: "Ludwig van
//     Beethoven" is Ludwig / van Beethoven, "Martin Luther King Jr." is
//     Martin Luther / King Jr.; "Van Morrison", capitalised, is Van /
//     Morrison;
//   - the words before the last name are the first name: "Mary Ann Smith"
//     is Mary Ann / Smith;
//   - a single word is a last name only ("Cher": no first name), since a
//     CRM that needs one name needs the last one.
//
// Names written family name first ("山田 太郎") are split the same way:
// partners that know better send first_name and last_name.
package starter

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
	"github.com/acme/integrations/workflows"
)

// ErrNotFound is returned for an ID no integration has.
var ErrNotFound = errors.New("integration not found")

// ErrInvalidInput marks errors in what the caller gave (an ID, a provider,
// a credentials document); errors.Is finds it, the message is the cause's.
var ErrInvalidInput = errors.New("invalid input")

type inputError struct{ err error }

func (e *inputError) Error() string        { return e.err.Error() }
func (e *inputError) Unwrap() error        { return e.err }
func (e *inputError) Is(target error) bool { return target == ErrInvalidInput }

func invalid(err error) error { return &inputError{err: err} }

// Starter performs operations on integrations.
type Starter struct {
	Temporal   client.Client
	Store      *store.Store
	Keyring    *credential.Keyring
	Connectors *crm.Registry
	// Config is given to the workflows this starter creates.
	Config workflows.Config
	// TaskQueue the workflows run on (workflows.TaskQueue when empty).
	TaskQueue string
	// Nudger coalesces sync nudges after intake; nil signals directly.
	Nudger *Nudger
	// Now is the clock for creation times (time.Now when nil).
	Now func() time.Time
	// OAuthRedirectURL is the callback the CRMs' consent pages redirect
	// to (PUBLIC-URL/oauth/callback); empty: OAuth connect is off.
	OAuthRedirectURL string
}

func (s *Starter) taskQueue() string {
	if s.TaskQueue != "" {
		return s.TaskQueue
	}
	return workflows.TaskQueue
}

func (s *Starter) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Create validates spec, starts the integration's workflow, and returns
// once its first snapshot is in the database.
func (s *Starter) Create(ctx context.Context, spec integration.Spec, by string) (integration.State, error) {
	if spec.Kind == integration.KindCRM {
		if _, err := s.Connectors.Get(spec.Provider); err != nil {
			return integration.State{}, invalid(err)
		}
	}
	state, err := integration.New(spec, s.now().Truncate(time.Microsecond))
	if err != nil {
		return integration.State{}, invalid(err)
	}
	in := workflows.Input{State: state, Config: s.Config, LastChange: integration.Created(state, by)}
	startOp := s.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       integration.WorkflowID(spec.Kind, spec.ID),
		TaskQueue:                s.taskQueue(),
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// A deleted integration's ID is not reused: its history and events
		// stay unambiguous.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: workflows.SearchAttributes(state),
	}, workflows.WorkflowFor(spec.Kind), in)
	handle, err := s.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: startOp,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   workflows.UpdateDescribe,
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		var exists *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &exists) {
			return integration.State{}, &integration.Rejection{Command: integration.EventCreated,
				Message: fmt.Sprintf("an integration with id %s already exists: choose another --id", spec.ID)}
		}
		return integration.State{}, fmt.Errorf("create %s: %w", spec.ID, err)
	}
	var snap workflows.Snapshot
	if err := handle.Get(ctx, &snap); err != nil {
		return integration.State{}, fmt.Errorf("create %s: wait for projection: %w", spec.ID, err)
	}
	return snap.State, nil
}

// Command sends complete-setup, pause, resume or delete to an integration
// and returns the state once the change is projected.
func (s *Starter) Command(ctx context.Context, id string, event integration.EventType, by, note string) (integration.State, error) {
	switch event {
	case integration.EventCompleteSetup, integration.EventPause, integration.EventResume, integration.EventDelete:
	default:
		return integration.State{}, invalid(fmt.Errorf("unknown command %q: use complete-setup, pause, resume or delete", event))
	}
	if err := checkActor(by, note); err != nil {
		return integration.State{}, err
	}
	return s.update(ctx, id, event, workflows.Command{By: by, Note: note})
}

// Authorize checks the credentials document for the integration's
// provider, stores it encrypted as a candidate credentials version, and
// asks the workflow to validate that version. The candidate becomes the
// credentials in use only if every check passes (the Validate activity
// promotes it); until then, and if it fails, the previous credentials stay
// in use. The answer is the workflow's: for a set-up integration whose
// checks fail, a *integration.Rejection naming them, with the status
// unchanged. A candidate the workflow did not take (refused, or the CRM
// could not be reached) is destroyed before Authorize returns. The
// credentials never enter the workflow: only their version number does.
func (s *Starter) Authorize(ctx context.Context, id string, raw []byte, by string) (integration.State, error) {
	if s.Keyring == nil {
		// Refuse before anything is stored: credentials sealed with no
		// key, or another key than the workers', could never be opened.
		return integration.State{}, fmt.Errorf("authorize %s: no encryption key: set %s to the key the workers use", id, credential.KeyEnv)
	}
	current, err := s.current(ctx, id)
	if err != nil {
		return integration.State{}, err
	}
	if current.Kind != integration.KindCRM {
		return integration.State{}, &integration.Rejection{Command: integration.EventAuthorize,
			Message: fmt.Sprintf("%s is a lead integration: only CRM integrations take credentials", id)}
	}
	if current.Status == integration.StatusDeleted {
		// Refuse before storing anything: a deleted integration keeps no
		// new secrets.
		return integration.State{}, deletedRejection(id)
	}
	if err := checkActor(by, ""); err != nil {
		return integration.State{}, err
	}
	connector, err := s.Connectors.Get(current.Provider)
	if err != nil {
		return integration.State{}, invalid(err)
	}
	if err := connector.ParseCredentials(raw); err != nil {
		return integration.State{}, invalid(fmt.Errorf("credentials for %s: %w", current.Provider, err))
	}
	candidate, err := s.Store.AddCandidateCredential(ctx, id, s.Keyring.Sealer(raw, id), s.now())
	if errors.Is(err, store.ErrDeleted) {
		// Deleted since the read above.
		return integration.State{}, deletedRejection(id)
	}
	if err != nil {
		return integration.State{}, fmt.Errorf("authorize %s: store credentials: %w", id, err)
	}
	st, err := s.update(ctx, id, integration.EventAuthorize, workflows.Command{By: by, CredentialVersion: candidate.Version})
	if err != nil {
		s.discardCandidate(ctx, id, candidate.Version)
		return integration.State{}, err
	}
	return st, nil
}

// discardWait bounds the clean-up of a candidate after a failed
// authorize, which runs even when the caller has gone.
const discardWait = 10 * time.Second

// discardCandidate destroys a candidate its authorize failed to get
// validated (the Validate activity discards refused ones itself). Only an
// unpromoted version is touched, so a validation that promoted it after
// all keeps it. Best effort: an undiscarded candidate is never used.
func (s *Starter) discardCandidate(ctx context.Context, id string, version int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discardWait)
	defer cancel()
	_, _ = s.Store.DiscardCandidateCredential(ctx, id, version, s.now())
}

func deletedRejection(id string) error {
	return &integration.Rejection{Command: integration.EventAuthorize, Message: fmt.Sprintf("integration %s is deleted: create a new one", id)}
}

// Status reads an integration from the projection.
func (s *Starter) Status(ctx context.Context, id string) (integration.State, error) {
	return s.current(ctx, id)
}

// Live queries the integration's workflow for its in-memory snapshot.
func (s *Starter) Live(ctx context.Context, id string) (workflows.Snapshot, error) {
	current, err := s.current(ctx, id)
	if err != nil {
		return workflows.Snapshot{}, err
	}
	if current.Status == integration.StatusDeleted {
		return workflows.Snapshot{State: current, ProjectedVersion: current.Version}, nil
	}
	v, err := s.Temporal.QueryWorkflow(ctx, integration.WorkflowID(current.Kind, id), "", workflows.QueryStatus)
	if err != nil {
		return workflows.Snapshot{}, fmt.Errorf("query %s: %w", id, err)
	}
	var snap workflows.Snapshot
	if err := v.Get(&snap); err != nil {
		return workflows.Snapshot{}, fmt.Errorf("query %s: decode: %w", id, err)
	}
	return snap, nil
}

// current returns the projected state of id, or ErrNotFound.
func (s *Starter) current(ctx context.Context, id string) (integration.State, error) {
	if err := integration.ValidateID("integration id", id); err != nil {
		return integration.State{}, invalid(err)
	}
	st, err := s.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return integration.State{}, fmt.Errorf("%w: no integration has id %s; see `integrations list`", ErrNotFound, id)
	}
	if err != nil {
		return integration.State{}, fmt.Errorf("read %s: %w", id, err)
	}
	return st, nil
}

// claimKey is the context key of WithClaimedBy.
type claimKey struct{}

// WithClaimedBy returns ctx carrying who the caller of a command says acts
// (an HTTP request's "by"). Every command sent with it records the claim
// beside the actor (the by argument, which the HTTP API sets to its API
// key's name): the claim is kept, never trusted. The error (invalid input)
// refuses a claim too long for history before anything is sent or stored.
func WithClaimedBy(ctx context.Context, by string) (context.Context, error) {
	if err := checkActor(by, ""); err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, claimKey{}, by), nil
}

// claimedBy is the claim WithClaimedBy put in ctx ("" none).
func claimedBy(ctx context.Context) string {
	by, _ := ctx.Value(claimKey{}).(string)
	return by
}

func (s *Starter) update(ctx context.Context, id string, event integration.EventType, cmd workflows.Command) (integration.State, error) {
	cmd.ClaimedBy = claimedBy(ctx)
	current, err := s.current(ctx, id)
	if err != nil {
		return integration.State{}, err
	}
	if current.Status == integration.StatusDeleted {
		return integration.State{}, &integration.Rejection{Command: event, Message: fmt.Sprintf("integration %s is deleted: create a new one", id)}
	}
	handle, err := s.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   integration.WorkflowID(current.Kind, id),
		UpdateName:   string(event),
		Args:         []any{cmd},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var snap workflows.Snapshot
		if err = handle.Get(ctx, &snap); err == nil {
			return snap.State, nil
		}
	}
	return integration.State{}, commandError(id, event, err)
}

// Limits on who/why, which travel through workflow history and the event
// table.
const (
	maxActorBytes = 100
	maxNoteBytes  = 1000
)

func checkActor(by, note string) error {
	if len(by) > maxActorBytes {
		return invalid(fmt.Errorf("--by/\"by\" is %d bytes: keep it within %d", len(by), maxActorBytes))
	}
	if len(note) > maxNoteBytes {
		return invalid(fmt.Errorf("--note/\"note\" is %d bytes: keep it within %d", len(note), maxNoteBytes))
	}
	return nil
}

// commandError turns a workflow's rejection back into an
// *integration.Rejection, and says the rest plainly.
func commandError(id string, event integration.EventType, err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() == workflows.RejectionErrorType {
		return &integration.Rejection{Command: event, Message: app.Message()}
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return &integration.Rejection{Command: event, Message: fmt.Sprintf("integration %s is no longer running (deleted?): see `integrations status %s`", id, id)}
	}
	var noAnswer *client.WorkflowUpdateServiceTimeoutOrCanceledError
	if errors.As(err, &noAnswer) {
		return fmt.Errorf("%s %s: %w", event, id, &noAnswerError{err: err})
	}
	return fmt.Errorf("%s %s: %w", event, id, err)
}

// ErrNoAnswer is wrapped by the error of a command whose workflow did not
// answer before the caller's deadline, or before the Temporal server gave
// up waiting for it, which it does a little ahead of that deadline (or
// the caller went away). The command may still take effect.
var ErrNoAnswer = errors.New("the workflow did not answer in time")

// noAnswerError is an update's error that errors.Is also finds as
// ErrNoAnswer; its message is the update's.
type noAnswerError struct{ err error }

func (e *noAnswerError) Error() string   { return e.err.Error() }
func (e *noAnswerError) Unwrap() []error { return []error{e.err, ErrNoAnswer} }

// View reads an integration from the projection as the API and the CLI
// show it: for a CRM integration, with its delivery counts.
func (s *Starter) View(ctx context.Context, id string) (integration.View, error) {
	st, err := s.current(ctx, id)
	if err != nil {
		return integration.View{}, err
	}
	return s.ViewOf(ctx, st)
}

// ViewOf renders st with its delivery counts (CRM integrations).
func (s *Starter) ViewOf(ctx context.Context, st integration.State) (integration.View, error) {
	id := st.ID
	v := integration.NewView(st)
	if st.Kind == integration.KindCRM {
		c, err := s.Store.DeliveryCounts(ctx, id)
		if err != nil {
			return integration.View{}, fmt.Errorf("delivery counts of %s: %w", id, err)
		}
		v.SetDeliveries(integration.Deliveries{Pending: c.Pending, Delivered: c.Delivered, Rejected: c.Rejected,
			GaveUp: c.GaveUp, Cancelled: c.Cancelled, LastSuccessAt: c.LastDeliveredAt})
		q, err := s.Store.QuotaOf(ctx, id)
		switch {
		case err == nil:
			v.SetQuota(integration.QuotaView{Remaining: q.Remaining, Limit: q.Limit, Window: q.Window, ObservedAt: q.ObservedAt})
		case !errors.Is(err, store.ErrNotFound):
			return integration.View{}, fmt.Errorf("quota of %s: %w", id, err)
		}
	}
	return v, nil
}
