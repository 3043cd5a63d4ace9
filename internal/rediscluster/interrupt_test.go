package rediscluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// crashEnv, when set, makes the test binary run one executor that kills
// itself (SIGKILL, no deferred cleanup) at a given point of a migration:
// the operator process dying mid-way, for real.
const crashEnv = "REDISCLUSTER_CRASH_AT"

// crashSpec is what the parent test tells the crashing executor.
type crashSpec struct {
	Desired Desired
	Phase   Phase
	// At is which occurrence of Phase kills the process (1 = the first).
	At int
}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{}) // clients of stopped pods log every failed dial
	if spec := os.Getenv(crashEnv); spec != "" {
		os.Exit(runCrashingExecutor(spec))
	}
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// runCrashingExecutor observes, plans and executes like the operator, and
// sends itself SIGKILL at the spec's point. Exit codes other than death by
// SIGKILL mean it never got there.
func runCrashingExecutor(text string) int {
	var spec crashSpec
	if err := json.Unmarshal([]byte(text), &spec); err != nil {
		fmt.Println("bad spec:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := NewConnector(ResolverFunc(func(_ context.Context, addr string) (string, error) { return resolveTest(addr) }), testPassword)
	plan, err := NewPlan(Observe(ctx, conn, spec.Desired.Pods), spec.Desired)
	if err != nil {
		fmt.Println("plan:", err)
		return 2
	}
	fmt.Printf("plan:\n%s\n", plan)
	seen := 0
	e := &Executor{Conn: conn, KeysPerBatch: 1, Hook: func(_ context.Context, ev Event) error {
		if ev.Phase != spec.Phase {
			return nil
		}
		if seen++; seen == spec.At {
			fmt.Printf("killed at %s #%d: step %d (%s), slots %s, batch %d\n",
				ev.Phase, seen, ev.Index+1, ev.Step, formatRanges(ev.Slots), ev.Batch)
			_ = os.Stdout.Sync()
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return nil
	}}
	if err := e.Execute(ctx, plan); err != nil {
		fmt.Println("execute:", err)
		return 4
	}
	fmt.Printf("finished without reaching %s #%d (saw %d)\n", spec.Phase, spec.At, seen)
	return 3
}

// TestInterruptedMigration kills the executor process (SIGKILL) in the
// middle of a slot migration, at each point where the slot is left open:
// after SETSLOT IMPORTING, after MIGRATING, between two MIGRATE batches,
// with every key moved but before SETSLOT NODE, and between SETSLOT NODE on
// the destination and on the source. The cases alternate between scaling
// out (3 -> 4 masters) and in (4 -> 3), each from where the last left off,
// while a writer keeps writing. The next plan must fix the open slots
// first, and converge with no slot open and no key lost.
func TestInterruptedMigration(t *testing.T) {
	s := newServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s.start(4)
	three := Desired{Pods: s.addrs(3), Masters: 3}
	four := Desired{Pods: s.addrs(4), Masters: 4}
	converge(ctx, t, s, three, nil)
	assertFormed(ctx, t, s, three)
	cc, red := clusterClient(t, s.pods[0].addr)
	const initial = 10000
	writeKeys(ctx, t, cc, "k:", initial)

	total := initial
	writtenBy := map[string]int{}
	for i, tc := range []struct {
		phase Phase
		at    int
		// inProcess stops the executor with a Hook error instead of
		// killing a process: the same point, the other way a caller can
		// abort (a cancelled reconcile).
		inProcess bool
	}{
		{PhaseImporting, 2, false},
		{PhaseMigrating, 2, false},
		{PhaseBatch, 100, false},
		{PhaseSetSlot, 2, false},
		{PhaseSetSlotDestination, 2, false},
		{PhaseBatch, 50, true},
	} {
		target, dir := four, "3 -> 4"
		if i%2 == 1 {
			target, dir = three, "4 -> 3"
		}
		prefix := fmt.Sprintf("w%d:", i)
		w := startWriter(ctx, cc, prefix, 1_000_000)

		spec := crashSpec{Desired: target, Phase: tc.phase, At: tc.at}
		var killedAt string
		if tc.inProcess {
			killedAt = stopInProcess(ctx, t, s, spec)
		} else {
			killedAt = runCrash(ctx, t, spec)
		}
		conn := NewConnector(s.resolver(), testPassword)
		open := Observe(ctx, conn, s.addrs(4)).Summary().OpenSlots
		_ = conn.Close()
		if open == 0 {
			t.Errorf("killed at %s, the cluster shows no open slot: the kill did not interrupt a migration", tc.phase)
		}

		rec := &firstSteps{}
		res, took := converge(ctx, t, s, target, rec.hook)
		written, errs := w.stop()
		top := assertFormed(ctx, t, s, target)
		assertNoErrors(t, errs)
		if len(rec.kinds) == 0 || rec.kinds[0] != KindFixOpenSlot {
			t.Errorf("after the kill the first steps were %v, want FixOpenSlot first", rec.kinds)
		}
		total += written
		writtenBy[prefix] = written
		verifyKeys(ctx, t, cc, "k:", initial)
		verifyKeys(ctx, t, cc, prefix, written)
		how := "killed by SIGKILL"
		if tc.inProcess {
			how = "stopped by a Hook error"
		}
		t.Logf("scale %s %s at %s; %d slots left open; the next plan (%d steps, first %s) converged in %v; %d keys written meanwhile, 0 errors: %s",
			dir, how, killedAt, open, res.Steps, rec.kinds[0], took.Round(time.Millisecond), written, shares(top))
	}
	for p, n := range writtenBy {
		verifyKeys(ctx, t, cc, p, n)
	}
	moved, ask := red.get()
	t.Logf("all %d keys verified after 6 interrupted migrations (%d MOVED, %d ASK redirections seen by the clients)", total, moved, ask)
}

// runCrash runs the crashing executor and returns where it died; it fails
// the test unless the process died by SIGKILL.
func runCrash(ctx context.Context, t *testing.T, spec crashSpec) string {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+string(b))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the crashing executor did not die (err %v):\n%s", err, out)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the crashing executor exited with %v, not SIGKILL:\n%s", err, out)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if after, ok := strings.CutPrefix(line, "killed at "); ok {
			return after
		}
	}
	t.Fatalf("the crashing executor died without saying where:\n%s", out)
	return ""
}

// errStop is what the in-process hook stops the executor with.
var errStop = errors.New("stopped by the test's hook")

// stopInProcess runs the executor in the test process and stops it with a
// Hook error at the spec's point; Execute must return that error.
func stopInProcess(ctx context.Context, t *testing.T, s *servers, spec crashSpec) string {
	t.Helper()
	conn := NewConnector(s.resolver(), testPassword)
	defer func() { _ = conn.Close() }()
	plan, err := NewPlan(Observe(ctx, conn, spec.Desired.Pods), spec.Desired)
	if err != nil {
		t.Fatal(err)
	}
	seen, where := 0, ""
	e := &Executor{Conn: conn, KeysPerBatch: 1, Hook: func(_ context.Context, ev Event) error {
		if ev.Phase == spec.Phase {
			if seen++; seen == spec.At {
				where = fmt.Sprintf("%s #%d: step %d (%s), slots %s, batch %d", ev.Phase, seen, ev.Index+1, ev.Step, formatRanges(ev.Slots), ev.Batch)
				return errStop
			}
		}
		return nil
	}}
	if err := e.Execute(ctx, plan); !errors.Is(err, errStop) {
		t.Fatalf("Execute = %v, want the hook's error", err)
	}
	return where
}

// firstSteps records the kinds of the steps run, in order.
type firstSteps struct {
	kinds []StepKind
}

func (f *firstSteps) hook(_ context.Context, ev Event) error {
	if ev.Phase == PhaseStep {
		f.kinds = append(f.kinds, ev.Step.Kind())
	}
	return nil
}
