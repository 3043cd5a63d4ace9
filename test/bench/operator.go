package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// operatorProcess is one run of the operator binary, with its metrics
// endpoint on a loopback port and its log in the work folder.
type operatorProcess struct {
	cmd     *exec.Cmd
	logPath string
	metrics string // http://127.0.0.1:port/metrics
	started time.Time
	exited  chan struct{}
	waitErr error

	// scrapes counts the benchmark's scrapes of the operator's metrics:
	// each costs the operator CPU (tens of ms at hundreds of platforms),
	// which the churn window takes out of the operator's own.
	scrapes atomic.Int64

	mu                      sync.Mutex
	peakHeapAlloc, peakHeap float64 // go_memstats_heap_alloc_bytes, _heap_inuse_bytes
	peakAnon                float64 // RssAnon: resident memory less the binary's file pages
	stopSampling            context.CancelFunc
	sampled                 sync.WaitGroup
}

// buildOperator builds the operator binary as `go build ./cmd` does.
func buildOperator(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd: %w", err)
	}
	return nil
}

// startOperator runs the operator against the cluster as operatorUser and
// waits until its controller has started its workers (caches synced).
func startOperator(ctx context.Context, bin, kubeconfig, logPath string, extra, env []string) (*operatorProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	args := append([]string{
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(port), "--metrics-secure=false",
		"--health-probe-bind-address=0",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childProcAttr()
	o := &operatorProcess{cmd: cmd, logPath: logPath, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the operator: %w", err)
	}
	o.started = time.Now()
	go func() { o.waitErr = cmd.Wait(); close(o.exited) }()
	if err := o.waitForWorkers(ctx); err != nil {
		o.stop()
		return nil, err
	}
	o.startSampling()
	return o, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitForWorkers waits for controller-runtime's "Starting workers" line:
// from then on the operator reconciles with synced caches.
func (o *operatorProcess) waitForWorkers(ctx context.Context) error {
	deadline := time.After(2 * time.Minute)
	for {
		if n, _ := o.countLog("Starting workers"); n > 0 {
			return nil
		}
		select {
		case <-o.exited:
			return fmt.Errorf("the operator exited at start (%w); its log:\n%s", o.waitErr, o.tail(30))
		case <-deadline:
			return fmt.Errorf("the operator did not start its workers in 2 minutes; its log:\n%s", o.tail(30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// countLog counts the log lines that contain s.
func (o *operatorProcess) countLog(s string) (int, error) {
	f, err := os.Open(o.logPath)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n, sc.Err()
}

func (o *operatorProcess) tail(lines int) string {
	data, _ := os.ReadFile(o.logPath)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// scrape reads the operator's metrics endpoint.
func (o *operatorProcess) scrape(ctx context.Context) (families, error) {
	o.scrapes.Add(1)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.metrics, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", acceptProtobuf)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping the operator's metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	return parseResponse(resp)
}

// startSampling records the peak Go heap, scraped every 500 ms (the metrics
// endpoint has no high-water mark of its own) until stopSampling: each scrape
// costs the operator some CPU, so idle windows are measured without it.
func (o *operatorProcess) startSampling() {
	ctx, cancel := context.WithCancel(context.Background())
	o.stopSampling = cancel
	o.sampled.Add(1)
	go func() {
		defer o.sampled.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			o.sampleHeap(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

func (o *operatorProcess) sampleHeap(ctx context.Context) {
	f, err := o.scrape(ctx)
	if err != nil {
		return
	}
	all := func(map[string]string) bool { return true }
	anon, _ := o.procStatus("RssAnon:")
	o.mu.Lock()
	defer o.mu.Unlock()
	o.peakHeapAlloc = max(o.peakHeapAlloc, f.sum("go_memstats_heap_alloc_bytes", all))
	o.peakHeap = max(o.peakHeap, f.sum("go_memstats_heap_inuse_bytes", all))
	o.peakAnon = max(o.peakAnon, anon)
}

// peakAnonymous is the highest RssAnon sampled (and now): what a memory
// limit must hold. The binary's own pages (tens of MiB, in VmHWM too) are
// file-backed, and the kernel reclaims them before it kills the pod.
func (o *operatorProcess) peakAnonymous() float64 {
	now, _ := o.procStatus("RssAnon:")
	o.mu.Lock()
	defer o.mu.Unlock()
	return max(o.peakAnon, now)
}

// procStatus reads one kB field of /proc/<pid>/status, in bytes.
func (o *operatorProcess) procStatus(field string) (float64, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(o.cmd.Process.Pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == field {
			kb, err := strconv.ParseFloat(fields[1], 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/<pid>/status", field)
}

// peakHeaps are the highest heap_alloc and heap_inuse seen so far.
func (o *operatorProcess) peakHeaps() (alloc, inuse float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.peakHeapAlloc, o.peakHeap
}

// memory reads the process's peak (VmHWM) and current (VmRSS) resident
// set, in bytes, from /proc.
func (o *operatorProcess) memory() (peak, current float64, err error) {
	if peak, err = o.procStatus("VmHWM:"); err != nil {
		return 0, 0, err
	}
	current, err = o.procStatus("VmRSS:")
	return peak, current, err
}

// endSampling stops the heap sampling; the peaks stay.
func (o *operatorProcess) endSampling() {
	if o.stopSampling != nil {
		o.stopSampling()
		o.sampled.Wait()
		o.stopSampling = nil
	}
}

// stop ends the operator as Kubernetes would (SIGTERM, then SIGKILL after
// 10 s) and waits for it.
func (o *operatorProcess) stop() {
	o.endSampling()
	select {
	case <-o.exited:
		return
	default:
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.exited:
	case <-time.After(10 * time.Second):
		_ = o.cmd.Process.Kill()
		<-o.exited
	}
}
