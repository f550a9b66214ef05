// Command probe times the lead flow's steps while a benchmark runs.
// Temporary investigation tool; not part of the repository.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/acme/integrations/store"
)

func main() {
	dbURL := flag.String("db", "", "")
	temporal := flag.String("temporal", "", "")
	crm := flag.String("crm", "", "")
	dur := flag.Duration("for", 20*time.Second, "")
	flag.Parse()
	ctx := context.Background()
	st, err := store.Open(ctx, *dbURL)
	if err != nil {
		panic(err)
	}
	db := st.DB()
	db.MustExec(`CREATE TABLE IF NOT EXISTS probe (id int primary key, n int)`)
	db.MustExec(`INSERT INTO probe VALUES (1, 0) ON CONFLICT DO NOTHING`)
	tc, err := client.Dial(client.Options{HostPort: *temporal})
	if err != nil {
		panic(err)
	}
	var pend, cred, commit, read, signal []time.Duration
	end := time.Now().Add(*dur)
	for time.Now().Before(end) {
		t := time.Now()
		if _, err := st.PendingDeliveries(ctx, *crm, 100); err != nil {
			panic(err)
		}
		pend = append(pend, time.Since(t))
		t = time.Now()
		if _, err := st.LatestCredential(ctx, *crm); err != nil {
			panic(err)
		}
		cred = append(cred, time.Since(t))
		t = time.Now()
		var n int
		if err := db.GetContext(ctx, &n, `SELECT 1`); err != nil {
			panic(err)
		}
		read = append(read, time.Since(t))
		t = time.Now()
		db.MustExec(`UPDATE probe SET n = n + 1 WHERE id = 1`)
		commit = append(commit, time.Since(t))
		t = time.Now()
		if err := tc.SignalWorkflow(ctx, "crm:"+*crm, "", "sync", nil); err != nil {
			panic(err)
		}
		signal = append(signal, time.Since(t))
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range []struct {
		name string
		d    []time.Duration
	}{{"PendingDeliveries(100)", pend}, {"LatestCredential", cred}, {"SELECT 1", read}, {"UPDATE+commit", commit}, {"Temporal SignalWorkflow", signal}} {
		slices.Sort(s.d)
		fmt.Fprintf(os.Stdout, "%-24s n=%d p50=%v p90=%v max=%v\n", s.name, len(s.d), s.d[len(s.d)/2].Round(10*time.Microsecond), s.d[len(s.d)*9/10].Round(10*time.Microsecond), s.d[len(s.d)-1].Round(10*time.Microsecond))
	}
}
