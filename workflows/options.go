package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// durableActivity runs the projection and notification activities.
var durableActivity = workflow.ActivityOptions{
	// Short: these are single database writes, and a worker that dies
	// while running one holds the workflow up to this long.
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		// Zero: retry until it succeeds; projections and notifications
		// must not be lost.
		MaximumAttempts: 0,
	},
}

// validationActivity runs a CRM validation: a few quick retries, then the
// caller decides (a command fails with "try again later", a periodic
// validation waits for the next interval).
var validationActivity = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    10 * time.Second,
		MaximumAttempts:    3,
	},
}

// deliveryActivity runs a delivery round.
var deliveryActivity = workflow.ActivityOptions{
	StartToCloseTimeout: 2 * time.Minute,
	// The activity heartbeats every second: a worker that dies mid-batch
	// is noticed in seconds and the batch retried elsewhere.
	HeartbeatTimeout: 5 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		// Errors of our own (the database) are retried here; the CRM's
		// errors come back as a result, for the rules to judge.
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		MaximumAttempts:    0,
	},
}
