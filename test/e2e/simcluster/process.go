package simcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// process is one child of the harness: a control-plane component or a
// redis-server. Its output goes to a log file.
//
// Nothing may outlive the harness, even when the harness itself is killed
// (SIGKILL, a `go test -timeout` panic): every child gets Pdeathsig, so the
// kernel kills it when its parent dies, and its own process group, so stop
// reaches anything it forks.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, valid after done
}

// startProcess starts bin with args, its output appended to logDir/name.log.
func startProcess(name, logDir, bin string, args []string, env []string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(name, logDir, cmd)
}

// startCmd starts a prepared command (its environment already set), its
// output appended to logDir/name.log.
func startCmd(name, logDir string, cmd *exec.Cmd) (*process, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }() // the child holds its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs
// it. It returns once the process is gone.
func (p *process) stop(grace time.Duration) { p.stopWith(syscall.SIGTERM, grace) }

// stopWith is stop with another signal (an image's STOPSIGNAL).
func (p *process) stopWith(sig syscall.Signal, grace time.Duration) {
	if done, _ := p.exited(); done {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Anything the process forked into its group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// failure describes an unexpected exit, with the end of its log.
func (p *process) failure() error {
	return fmt.Errorf("%s exited (%w); last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 20))
}

// tail is the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	end := len(data)
	for i := len(data) - 1; i >= 0 && n >= 0; i-- {
		if data[i] == '\n' {
			n--
			if n < 0 {
				return string(data[i+1 : end])
			}
		}
	}
	return string(data)
}
