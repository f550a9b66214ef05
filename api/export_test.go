package api

// WithClock makes the intake pacing read now instead of time.Now.
var WithClock = withClock
