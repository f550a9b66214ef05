package crmfake

// CallLogSize is how many calls a CallLog keeps.
const CallLogSize = 1000

// CallLog is a ring of an account's last CallLogSize calls, for the
// control API's calls endpoint. It has no lock: the account's book,
// which holds it, guards it with its own.
type CallLog[T any] struct {
	// calls holds count entries ending before next.
	calls [CallLogSize]T
	next  int
	count int
}

// Add logs c, dropping the oldest call when the log is full.
func (l *CallLog[T]) Add(c T) {
	l.calls[l.next] = c
	l.next = (l.next + 1) % CallLogSize
	l.count = min(l.count+1, CallLogSize)
}

// List returns the logged calls, oldest first.
func (l *CallLog[T]) List() []T {
	out := make([]T, 0, l.count)
	start := (l.next - l.count + CallLogSize) % CallLogSize
	for i := range l.count {
		out = append(out, l.calls[(start+i)%CallLogSize])
	}
	return out
}
